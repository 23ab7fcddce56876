"""Check an exported pipeline against the pipeline it was exported from: the
entities of every doc and the NER head's logits."""

from typing import Any, Dict, List, cast

import numpy
from spacy.language import Language
from spacy.tokens import Doc

from ..encoder.inputs import fresh_docs


def _head_logits(nlp: Language, docs: List[Doc], batch_size: int) -> List[numpy.ndarray]:
    """The fastbioner_ner head's logits per doc, the pipeline run up to the head."""
    names = nlp.pipe_names
    if "fastbioner_ner" not in names:
        raise ValueError(f"the pipeline {names} has no fastbioner_ner component")
    before = names[: names.index("fastbioner_ner")]
    out: List[numpy.ndarray] = []
    head = cast(Any, nlp.get_pipe("fastbioner_ner"))
    for i in range(0, len(docs), batch_size):
        batch = docs[i : i + batch_size]
        for name in before:
            batch = list(cast(Any, nlp.get_pipe(name)).pipe(batch))
        out.extend(numpy.asarray(x) for x in head.model.predict(batch))
    return out


def compare_pipelines(
    reference: Language, exported: Language, docs: List[Doc], *, batch_size: int = 64
) -> Dict[str, Any]:
    """Annotate the same docs (their tokens) with both pipelines.

    reference (Language): The pipeline that was exported.
    exported (Language): The exported pipeline.
    docs (List[Doc]): The docs; only their words and spaces are used.
    batch_size (int): The batch size of both pipelines.
    RETURNS (Dict[str, Any]): docs, entities (of the reference),
        docs_with_other_entities, max_logit_diff.
    """
    ref_docs = list(reference.pipe(fresh_docs(reference, docs), batch_size=batch_size))
    exp_docs = list(exported.pipe(fresh_docs(exported, docs), batch_size=batch_size))
    differ = sum(
        1
        for a, b in zip(ref_docs, exp_docs)
        if [(e.start, e.end, e.label_) for e in a.ents] != [(e.start, e.end, e.label_) for e in b.ents]
    )
    ref_logits = _head_logits(reference, fresh_docs(reference, docs), batch_size)
    exp_logits = _head_logits(exported, fresh_docs(exported, docs), batch_size)
    diffs = [float(numpy.abs(a - b).max()) for a, b in zip(ref_logits, exp_logits) if a.size]
    return {
        "docs": len(docs),
        "entities": sum(len(doc.ents) for doc in ref_docs),
        "docs_with_other_entities": differ,
        "max_logit_diff": max(diffs) if diffs else 0.0,
    }
