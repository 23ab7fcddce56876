"""Entity confidence of the `fastbioner_ner` component, set in its
`set_annotations` when its setting `cfg["store_confidence"]` is on.

The confidence of an entity is the mean, over its tokens, of the probability
that the component gives the token's decoded tag (`B-X` for its first token,
`I-X` for the others): softmax of the logits of `FastBioNER.predict`, at
temperature 1. The Viterbi decoder picks the best valid sequence, so a token
can carry a decoded tag that is not its own most probable tag; the mean then
falls, which is what a user filtering on confidence wants to see.

It is stored as the span extension `ent._.fastbioner_confidence` (in
`doc.user_data`), which travels back from `nlp.pipe(n_process=N)` workers with
the doc, under fork, spawn and forkserver alike: it is computed by the
component's own method, not by a wrapper that pickling would drop.
"""

from typing import Iterable, List, Optional, Sequence, cast

import numpy
from spacy.tokens import Doc, Span
from thinc.types import Floats2d

from .decoding import log_softmax

CONFIDENCE_ATTR = "fastbioner_confidence"


def register_confidence_extension() -> None:
    """Register `Span._.fastbioner_confidence` (default None), once."""
    if not Span.has_extension(CONFIDENCE_ATTR):
        Span.set_extension(CONFIDENCE_ATTR, default=None)


def entity_confidence(probs: numpy.ndarray, start: int, end: int, tag_ids: Sequence[int]) -> float:
    """The mean probability of the decoded tags of tokens [start, end).

    probs (numpy.ndarray): (n_tokens, n_tags) tag probabilities of the doc.
    start (int): The entity's first token.
    end (int): The token after its last.
    tag_ids (Sequence[int]): The decoded tag of each token of the entity.
    RETURNS (float): The confidence, in [0, 1].
    """
    return float(numpy.mean(probs[numpy.arange(start, end), numpy.asarray(tag_ids)]))


def set_entity_confidence(
    tags: Sequence[str], docs: Iterable[Doc], scores: List[numpy.ndarray], preset: Optional[numpy.ndarray] = None
) -> None:
    """Set `ent._.fastbioner_confidence` on every entity the component set.

    tags (Sequence[str]): The component's tags, the columns of the scores.
    docs (Iterable[Doc]): Docs whose entities the component has just set.
    scores (List[numpy.ndarray]): Their logits (numpy), from `predict`.
    preset (Optional[numpy.ndarray]): Over the batch's tokens, doc after doc,
        True for tokens of entities that were on the docs before (kept, not
        the component's: they get no confidence).
    """
    register_confidence_extension()
    index = {tag: i for i, tag in enumerate(tags)}
    offset = 0
    for doc, doc_scores in zip(docs, scores):
        first = offset
        offset += len(doc)
        if not len(doc.ents):
            continue
        probs = numpy.exp(numpy.asarray(log_softmax(cast(Floats2d, doc_scores))))
        for ent in doc.ents:
            if preset is not None and preset[first + ent.start]:
                continue
            tag_ids = [index[f"B-{ent.label_}"]] + [index[f"I-{ent.label_}"]] * (len(ent) - 1)
            ent._.set(CONFIDENCE_ATTR, entity_confidence(probs, ent.start, ent.end, tag_ids))
