"""The encoder's inputs as a pipeline's transformer component builds them:
unannotated copies of gold docs, run through the components before the
transformer (the sentence splitter sets its windows), cut into the
component's length-sorted sub-batches, and tokenised. Used to time the raw
forward pass beside the pipeline (benchmark) and to calibrate int8 (export).

spacy-transformers is imported inside the functions: it imports
`transformers`, which `import spacy_fastbioner` must not (see `__init__.py`).
"""

from typing import Any, Dict, List, Sequence

import numpy
import torch
from spacy.language import Language
from spacy.tokens import Doc

from .transformer import find_transformer

RawBatch = List[Dict[str, torch.Tensor]]


def fresh_docs(nlp: Language, texts: Sequence[Doc]) -> List[Doc]:
    """Unannotated copies of gold docs in the pipeline's vocab, keeping the
    gold tokens (as `spacy evaluate --gold-preproc` does)."""
    return [Doc(nlp.vocab, words=[t.text for t in doc], spaces=[bool(t.whitespace_) for t in doc]) for doc in texts]


def raw_batches(trf: Any, docs: List[Doc]) -> RawBatch:
    """The wordpiece inputs that the transformer component feeds its Hugging
    Face model for these docs as they are: split and length-sorted as
    `Transformer.pipe` does (`max_batch_items`), then spans, tokenizer, the
    same truncation. Docs must already carry what the components before the
    transformer set (see `encoder_inputs`).

    trf: The pipeline's spacy-transformers `Transformer` component.
    RETURNS (List[Dict[str, torch.Tensor]]): The model's keyword arguments per sub-batch.
    """
    from spacy_transformers.align import get_alignment, get_alignment_via_offset_mapping
    from spacy_transformers.data_classes import WordpieceBatch
    from spacy_transformers.layers.transformer_model import huggingface_tokenize
    from spacy_transformers.truncate import truncate_oversize_splits
    from spacy_transformers.util import batch_by_length

    model = trf.model
    tokenizer = model.tokenizer
    get_spans = model.attrs["get_spans"]
    inputs = []
    for indices in batch_by_length(docs, trf.cfg["max_batch_items"]):
        spans = [span for doc_spans in get_spans([docs[i] for i in indices]) for span in doc_spans]
        if not spans:
            continue
        encoding = huggingface_tokenize(tokenizer, [span.text for span in spans])
        wordpieces = WordpieceBatch.from_batch_encoding(encoding)
        if "offset_mapping" in encoding:
            align = get_alignment_via_offset_mapping(spans, encoding["offset_mapping"])
        else:
            align = get_alignment(spans, wordpieces.strings, tokenizer.all_special_tokens)
        wordpieces, _ = truncate_oversize_splits(wordpieces, align, tokenizer.model_max_length)
        kwargs = {
            "input_ids": torch.from_numpy(numpy.ascontiguousarray(wordpieces.input_ids)),
            "attention_mask": torch.from_numpy(numpy.ascontiguousarray(wordpieces.attention_mask)),
        }
        if wordpieces.token_type_ids is not None:
            kwargs["token_type_ids"] = torch.from_numpy(numpy.ascontiguousarray(wordpieces.token_type_ids))
        inputs.append(kwargs)
    return inputs


def encoder_inputs(nlp: Language, docs: Sequence[Doc]) -> RawBatch:
    """The encoder's keyword inputs for the docs' words, as the pipeline
    builds them: fresh copies, the components before the transformer, then
    `raw_batches`.

    nlp (Language): The pipeline.
    docs (Sequence[Doc]): Docs whose words to use (annotations are ignored).
    RETURNS (List[Dict[str, torch.Tensor]]): The model's keyword arguments per sub-batch.
    """
    trf = find_transformer(nlp)
    prepared = fresh_docs(nlp, docs)
    for _, component in nlp.pipeline:
        if component is trf:
            break
        prepared = [component(doc) for doc in prepared]
    return raw_batches(trf, prepared)
