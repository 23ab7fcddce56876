"""The encoder's inputs as the pipeline builds them (`encoder_inputs`), which
the benchmark's raw forward pass and int8 calibration are fed."""

from pathlib import Path

import spacy
import torch
from helpers import record_encoder_inputs

from spacy_fastbioner.encoder.inputs import encoder_inputs, fresh_docs, raw_batches
from spacy_fastbioner.encoder.transformer import find_transformer

TEXTS = [
    "Aspirin reduced the risk. Cancer of the colon was rare. 5 patients had naloxone.",
    "Colon cancer.",
    "The tumour grew. Lithium carbonate did not help. A second dose was given.",
]


def test_encoder_inputs_are_what_the_pipeline_feeds(raw_text_model: Path) -> None:
    """With a sentence splitter before the transformer, the pipeline feeds one
    span per sentence: `encoder_inputs` gives the same batches, where
    `raw_batches` on unsplit docs would not."""
    nlp = spacy.load(raw_text_model)
    trf = find_transformer(nlp)
    trf.cfg["max_batch_items"] = 64  # several length-sorted sub-batches
    gold = [nlp.make_doc(text) for text in TEXTS * 3]
    fed = record_encoder_inputs(trf, lambda: list(nlp.pipe(fresh_docs(nlp, gold))))
    found = encoder_inputs(nlp, gold)
    assert len(found) == len(fed) > 1
    for ours, pipeline in zip(found, fed):
        assert torch.equal(ours["input_ids"], pipeline["input_ids"])
        assert torch.equal(ours["attention_mask"], pipeline["attention_mask"])
    unsplit = raw_batches(trf, fresh_docs(nlp, gold))
    assert sum(len(b["input_ids"]) for b in unsplit) < sum(len(b["input_ids"]) for b in found)


def test_fresh_docs_drop_annotations(raw_text_model: Path) -> None:
    nlp = spacy.load(raw_text_model)
    annotated = list(nlp.pipe(TEXTS))
    assert all(doc.has_annotation("SENT_START") for doc in annotated)
    fresh = fresh_docs(nlp, annotated)
    assert [doc.text for doc in fresh] == TEXTS
    assert [[t.text for t in doc] for doc in fresh] == [[t.text for t in doc] for doc in annotated]
    assert not any(doc.has_annotation("SENT_START") or doc.ents for doc in fresh)
