"""Entities already on a doc when `fastbioner_ner` runs (set by an entity
ruler before it, by hand, or by an earlier run): kept, as spaCy's `ner` keeps
them.

spaCy's transition-based `ner` treats a token with ENT_IOB "B" or "I" (blocked
spans included) as preset: no move may change it, so the entity stays as it
is, and new entities are predicted only on the other tokens, never
overlapping or extending a preset one (`spacy/pipeline/_parser_internals/
ner.pyx`, the `is_valid` of each move). A token preset to "O" is predicted
again. Here the same holds: decoding sees the preset tokens as certain "O"
(`pin_outside`), so that the best valid path runs around them, and they keep
all their entity attributes, knowledge-base and entity ids included.
"""

from typing import List, Optional, Sequence, Tuple

import numpy
from spacy.attrs import ENT_IOB
from spacy.tokens import Doc

# ENT_IOB: 1 inside an entity, 3 at its start (0 missing, 2 outside).
PRESET_IOB = (1, 3)


def preset_entities(docs: Sequence[Doc], attrs: Sequence[int]) -> Optional[Tuple[numpy.ndarray, numpy.ndarray]]:
    """The entity attributes of every token of a batch, and which tokens are
    in a preset entity.

    docs (Sequence[Doc]): The batch.
    attrs (Sequence[int]): The attributes to read, ENT_IOB among them.
    RETURNS (Optional[Tuple[numpy.ndarray, numpy.ndarray]]): The
        (n_tokens, len(attrs)) uint64 attributes of the docs' tokens,
        concatenated, and an (n_tokens,) mask of the preset tokens; None
        where no doc has a preset entity (the usual case, found without
        reading any array).
    """
    iob = list(attrs).index(ENT_IOB)
    found = {}
    for i, doc in enumerate(docs):
        # A fresh doc (no ENT_IOB set) stops here, without reading an array.
        if len(doc) and doc.has_annotation("ENT_IOB"):
            values = doc.to_array(list(attrs)).reshape((len(doc), len(attrs)))
            if numpy.isin(values[:, iob], PRESET_IOB).any():
                found[i] = values
    if not found:
        return None
    values = numpy.concatenate(
        [found.get(i, numpy.zeros((len(doc), len(attrs)), dtype="uint64")) for i, doc in enumerate(docs)]
    ).astype("uint64", copy=False)
    return values, numpy.isin(values[:, iob], PRESET_IOB)


def pin_outside(scores: Sequence[numpy.ndarray], kept: numpy.ndarray) -> List[numpy.ndarray]:
    """Score tables in which each kept token can only be "O" (tag 0, as
    `bio_tags` orders them): decoding then plans every other token around
    it, so that no predicted entity runs into a kept one.

    scores (Sequence[numpy.ndarray]): Per doc, (n_tokens, n_tags) logits.
    kept (numpy.ndarray): The mask of the kept tokens, over the docs' tokens
        concatenated.
    RETURNS (List[numpy.ndarray]): The tables; a changed one is a copy.
    """
    pinned = []
    end = 0
    for table in scores:
        end += len(table)
        mask = kept[end - len(table) : end]
        if mask.any():
            table = numpy.array(table, dtype="f")
            table[mask] = -numpy.inf
            table[mask, 0] = 0.0
        pinned.append(table)
    return pinned
