"""Entity confidence in annotation runs: turning on the `fastbioner_ner`
component's own confidence (pipeline/confidence.py) and reading it back.

The confidence is computed inside the component's `set_annotations`, from the
scores that `predict` returns inside `nlp.pipe`, so the transformer runs once;
it is stored as `ent._.fastbioner_confidence`, which spaCy sends back from the
worker processes of `nlp.pipe(..., n_process=N)` with the doc, whatever the
start method (fork, spawn, forkserver).
"""

from typing import Any, Dict, List, NamedTuple, Optional, cast

from spacy.language import Language
from spacy.tokens import Doc, Span

from ..pipeline.confidence import CONFIDENCE_ATTR, entity_confidence, register_confidence_extension
from ..pipeline.linker import SCORE_EXTENSION as KB_SCORE_ATTR
from ..pipeline.ner import FastBioNER


class Entity(NamedTuple):
    """An entity found by the pipeline, in document character offsets.

    confidence: the NER component's, None where it gives none (spaCy's `ner`).
    kb_id, kb_score: the linker's identifier ("" for NIL) and score; None for
        both when the pipeline has no linker.
    """

    start: int
    end: int
    label: str
    confidence: Optional[float] = None
    kb_id: Optional[str] = None
    kb_score: Optional[float] = None


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


def doc_entities(doc: Doc, offset: int = 0, linked: bool = False) -> List[Entity]:
    """The entities of an annotated doc, with their confidence where the
    component set one (None otherwise, e.g. for spaCy's own `ner`).

    doc (Doc): The doc.
    offset (int): Added to the character offsets (a passage's offset).
    linked (bool): The pipeline has a linker: read each entity's `kb_id_` and
        `_.kb_score` (NIL is "").
    RETURNS (List[Entity]): The entities, in order.
    """
    known = Span.has_extension(CONFIDENCE_ATTR)
    scored = linked and Span.has_extension(KB_SCORE_ATTR)
    return [
        Entity(
            ent.start_char + offset,
            ent.end_char + offset,
            ent.label_,
            ent._.get(CONFIDENCE_ATTR) if known else None,
            ent.kb_id_ if linked else None,
            ent._.get(KB_SCORE_ATTR) if scored else None,
        )
        for ent in doc.ents
    ]


LINKER_FACTORIES = ("fastbioner_linker", "entity_linker")


def has_linker(nlp: Language) -> bool:
    """Whether a pipeline sets identifiers: a `fastbioner_linker`, or spaCy's `entity_linker`."""
    return any(nlp.get_pipe_meta(name).factory in LINKER_FACTORIES for name in nlp.pipe_names)


__all__ = ["Entity", "add_entity_confidence", "doc_entities", "entity_confidence", "has_linker"]
