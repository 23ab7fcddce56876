"""Entity confidence in annotation runs: turning on the `fastbioner_ner`
component's own confidence (pipeline/confidence.py) and reading it back.

The confidence is computed inside the component's `set_annotations`, from the
scores that `predict` returns inside `nlp.pipe`, so the transformer runs once;
it is stored as `ent._.fastbioner_confidence`, which spaCy sends back from the
worker processes of `nlp.pipe(..., n_process=N)` with the doc, whatever the
start method (fork, spawn, forkserver).
"""

from typing import Any, Dict, List, Optional, Tuple, cast

from spacy.language import Language
from spacy.tokens import Doc, Span

from ..pipeline.confidence import CONFIDENCE_ATTR, entity_confidence, register_confidence_extension
from ..pipeline.ner import FastBioNER

# An entity found by the pipeline: (start_char, end_char, label, confidence or None).
Entity = Tuple[int, int, str, Optional[float]]


def add_entity_confidence(nlp: Language) -> List[str]:
    """Turn on the confidence of every `fastbioner_ner` component of the
    pipeline (its setting `cfg["store_confidence"]`).

    nlp (Language): The pipeline, changed in place.
    RETURNS (List[str]): The names of the components that give a confidence.
    """
    register_confidence_extension()
    names = []
    for name, pipe in nlp.pipeline:
        if isinstance(pipe, FastBioNER):
            cast(Dict[str, Any], pipe.cfg)["store_confidence"] = True
            names.append(name)
    return names


def doc_entities(doc: Doc, offset: int = 0) -> List[Entity]:
    """The entities of an annotated doc, with their confidence where the
    component set one (None otherwise, e.g. for spaCy's own `ner`).

    doc (Doc): The doc.
    offset (int): Added to the character offsets (a passage's offset).
    RETURNS (List[Entity]): (start_char, end_char, label, confidence), in order.
    """
    known = Span.has_extension(CONFIDENCE_ATTR)
    return [
        (
            ent.start_char + offset,
            ent.end_char + offset,
            ent.label_,
            ent._.get(CONFIDENCE_ATTR) if known else None,
        )
        for ent in doc.ents
    ]


__all__ = ["Entity", "add_entity_confidence", "doc_entities", "entity_confidence"]
