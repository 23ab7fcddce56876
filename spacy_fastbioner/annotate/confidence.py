"""Entity confidence from the `fastbioner_ner` component's tag probabilities.

The confidence of an entity is the mean, over its tokens, of the probability
that the component gives the token's decoded tag (`B-X` for its first token,
`I-X` for the others): softmax of the logits of `FastBioNER.predict`, at
temperature 1. The Viterbi decoder picks the best valid sequence, so a token
can carry a decoded tag that is not its own most probable tag; the mean then
falls, which is what a user filtering on confidence wants to see.

The probabilities come from the scores that `predict` returns to
`set_annotations` inside `nlp.pipe`, so the transformer runs once. The values
are kept in `doc.user_data`, which spaCy sends back from the child processes of
`nlp.pipe(..., n_process=N)` with the doc.
"""

import types
from typing import Dict, List, Optional, Sequence, Tuple, cast

import numpy
from spacy.language import Language
from spacy.tokens import Doc
from thinc.types import Floats2d

from ..pipeline.decoding import log_softmax
from ..pipeline.ner import FastBioNER

USER_DATA_KEY = "fastbioner_confidence"
# An entity found by the pipeline: (start_char, end_char, label, confidence or None).
Entity = Tuple[int, int, str, Optional[float]]


def entity_confidence(probs: numpy.ndarray, start: int, end: int, tag_ids: Sequence[int]) -> float:
    """The mean probability of the decoded tags of tokens [start, end).

    probs (numpy.ndarray): (n_tokens, n_tags) tag probabilities of the doc.
    start (int): The entity's first token.
    end (int): The token after its last.
    tag_ids (Sequence[int]): The decoded tag of each token of the entity.
    RETURNS (float): The confidence, in [0, 1].
    """
    return float(numpy.mean(probs[numpy.arange(start, end), numpy.asarray(tag_ids)]))


def add_entity_confidence(nlp: Language) -> List[str]:
    """Make every `fastbioner_ner` component of the pipeline also store its
    entities' confidence in `doc.user_data`, wrapping the component's
    `set_annotations` (the one place where the scores of `predict` and the
    decoded entities meet, also in `nlp.pipe`'s child processes).

    nlp (Language): The pipeline, changed in place.
    RETURNS (List[str]): The names of the components that give a confidence.
    """
    names = []
    for name, pipe in nlp.pipeline:
        if isinstance(pipe, FastBioNER) and not getattr(pipe, "_stores_confidence", False):
            original = pipe.set_annotations

            def set_annotations(self: FastBioNER, docs, scores: List[Floats2d], _original=original) -> None:
                docs = list(docs)
                _original(docs, scores)
                _store_confidence(self, docs, scores)

            pipe.set_annotations = types.MethodType(set_annotations, pipe)  # type: ignore[method-assign]
            pipe._stores_confidence = True
        if getattr(pipe, "_stores_confidence", False):
            names.append(name)
    return names


def _store_confidence(pipe: FastBioNER, docs: Sequence[Doc], scores: List[Floats2d]) -> None:
    index = {tag: i for i, tag in enumerate(pipe.tags)}
    for doc, doc_scores in zip(docs, scores):
        if not len(doc.ents):
            continue
        probs = numpy.exp(numpy.asarray(log_softmax(cast(Floats2d, pipe.model.ops.to_numpy(doc_scores)))))
        values = []
        for ent in doc.ents:
            tag_ids = [index[f"B-{ent.label_}"]] + [index[f"I-{ent.label_}"]] * (len(ent) - 1)
            values.append([ent.start_char, ent.end_char, entity_confidence(probs, ent.start, ent.end, tag_ids)])
        doc.user_data[USER_DATA_KEY] = values


def doc_entities(doc: Doc, offset: int = 0) -> List[Entity]:
    """The entities of an annotated doc, with their confidence where the
    component stored one (None otherwise, e.g. for spaCy's own `ner`).

    doc (Doc): The doc.
    offset (int): Added to the character offsets (a passage's offset).
    RETURNS (List[Entity]): (start_char, end_char, label, confidence), in order.
    """
    stored: Dict[Tuple[int, int], float] = {
        (int(s), int(e)): float(c) for s, e, c in doc.user_data.get(USER_DATA_KEY, ())
    }
    return [
        (ent.start_char + offset, ent.end_char + offset, ent.label_, stored.get((ent.start_char, ent.end_char)))
        for ent in doc.ents
    ]
