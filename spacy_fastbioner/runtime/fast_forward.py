"""The transformer model's forward pass for inference, with the spaCy side
vectorised.

spacy-transformers' `TransformerModel` forward builds each span's text by
joining its tokens and aligns tokens to wordpieces through Python dicts and
sets keyed by `Token` objects. At int8 speeds these took about a tenth of the
pipeline's time (cProfile of `nlp.pipe` over NCBI-disease test sentences with
the ONNX int8 student). Here the span texts are slices of `doc.text` and the
alignment is computed with NumPy from the tokens' character offsets and the
tokenizer's offset mapping. The output is the same `FullTransformerBatch`:
`get_alignment_fast` returns what `get_alignment_via_offset_mapping` returns,
and `split_by_doc` what `FullTransformerBatch.split_by_doc` returns, which the
tests check on varied text. Both find a token's place in the batch as its
doc's offset plus `token.i`, where spacy-transformers builds a dict keyed by
every `Token` of the batch.
"""

from typing import Any, Callable, Dict, List, Tuple, cast

import numpy
import torch
from spacy.attrs import IDX, LENGTH
from spacy.tokens import Doc, Span
from spacy_transformers.align import get_alignment
from spacy_transformers.data_classes import FullTransformerBatch, TransformerData, WordpieceBatch
from spacy_transformers.layers.transformer_model import huggingface_tokenize
from spacy_transformers.truncate import truncate_oversize_splits
from thinc.api import torch2xp
from thinc.types import Ragged
from transformers.file_utils import ModelOutput
from transformers.modeling_outputs import BaseModelOutput


def get_alignment_fast(spans: List[Span], offset_mapping: numpy.ndarray) -> Ragged:
    """The alignment of each unique token of the spans to its wordpieces in
    the flattened (padded) wordpiece batch: the result of spacy-transformers'
    `get_alignment_via_offset_mapping`, computed with NumPy.

    A wordpiece is aligned to the token that covers each of its characters,
    where a token covers its characters and the one after it (so that a
    wordpiece starting on whitespace still aligns), a later token winning.

    spans (List[Span]): The spans, in batch order.
    offset_mapping (numpy.ndarray): (n_spans, n_wordpieces, 2) character
        offsets of the wordpieces in each span's text.
    RETURNS (Ragged): Wordpiece indices (sorted per token) and their counts,
        one count per token, tokens in the order of their docs' first span.
    """
    if len(spans) != len(offset_mapping):
        raise ValueError("Cannot align batches of different sizes.")
    offset_mapping = numpy.asarray(offset_mapping, dtype="int64")
    n_wp = offset_mapping.shape[1] if offset_mapping.ndim == 3 else 0
    doc_start = {}
    doc_arrays = {}
    n_tokens = 0
    for span in spans:
        key = id(span.doc)
        if key not in doc_start:
            doc_start[key] = n_tokens
            doc_arrays[key] = span.doc.to_array([IDX, LENGTH]).astype("int64").reshape((-1, 2))
            n_tokens += len(span.doc)
    token_parts = []
    wp_parts = []
    for i, span in enumerate(spans):
        if not len(span):
            continue
        arrays = doc_arrays[id(span.doc)][span.start : span.end]
        span_idx = int(arrays[0, 0])
        rel_starts = arrays[:, 0] - span_idx
        covered = arrays[:, 1] + 1
        size = span.end_char - span_idx + 1
        # Later tokens overwrite earlier ones, as the loop over tokens does.
        char_to_token = numpy.full(size + 1, -1, dtype="int64")
        positions = numpy.repeat(numpy.arange(len(span)), covered)
        chars = numpy.arange(int(covered.sum())) - numpy.repeat(numpy.cumsum(covered) - covered, covered)
        chars += numpy.repeat(rel_starts, covered)
        keep = chars < size
        char_to_token[chars[keep]] = positions[keep]
        char_to_token = char_to_token[:size]
        starts = offset_mapping[i, :, 0]
        lengths = numpy.maximum(offset_mapping[i, :, 1] - starts, 0)
        if not lengths.any():
            continue
        wp = numpy.repeat(numpy.arange(n_wp), lengths)
        wp_chars = numpy.arange(int(lengths.sum())) - numpy.repeat(numpy.cumsum(lengths) - lengths, lengths)
        wp_chars += numpy.repeat(starts, lengths)
        in_range = (wp_chars >= 0) & (wp_chars < size)
        tokens = numpy.full(wp_chars.shape, -1, dtype="int64")
        tokens[in_range] = char_to_token[wp_chars[in_range]]
        found = tokens >= 0
        token_parts.append(tokens[found] + doc_start[id(span.doc)] + span.start)
        wp_parts.append(wp[found] + i * n_wp)
    if token_parts:
        token_pos = numpy.concatenate(token_parts)
        wp_index = numpy.concatenate(wp_parts)
        pairs = numpy.unique(token_pos * (len(spans) * n_wp + 1) + wp_index)
        token_pos = pairs // (len(spans) * n_wp + 1)
        wp_index = pairs % (len(spans) * n_wp + 1)
    else:
        token_pos = wp_index = numpy.zeros((0,), dtype="int64")
    lengths_out = numpy.bincount(token_pos, minlength=n_tokens).astype("i")
    return Ragged(cast(Any, wp_index.astype("i")), cast(Any, lengths_out))


def doc_offsets(spans: List[Span]) -> Dict[int, int]:
    """The place of each doc's first token among the batch's tokens: docs
    in the order of their first span, each with all its tokens (the order of
    spacy-transformers' `get_token_positions`). Keyed by `id(doc)`."""
    offsets: Dict[int, int] = {}
    n_tokens = 0
    for span in spans:
        if id(span.doc) not in offsets:
            offsets[id(span.doc)] = n_tokens
            n_tokens += len(span.doc)
    return offsets


def split_by_doc(batch: FullTransformerBatch) -> List[TransformerData]:
    """The batch's outputs split per doc: `FullTransformerBatch.split_by_doc`
    with the token positions found by `doc_offsets`."""
    offsets = doc_offsets([span for doc_spans in batch.spans for span in doc_spans])
    n_spans = len(cast(torch.Tensor, cast(BaseModelOutput, batch.model_output).last_hidden_state))
    xp_output: Dict[str, Any] = {}
    for key, output in batch.model_output.items():
        if isinstance(output, torch.Tensor):
            xp_output[key] = torch2xp(output)
        elif (
            isinstance(output, tuple)
            and all(isinstance(t, torch.Tensor) for t in output)
            and all(t.shape[0] == n_spans for t in output)
        ):
            xp_output[key] = [torch2xp(t) for t in output]
    outputs = []
    start = prev_tokens = 0
    for doc_spans in batch.spans:
        if len(doc_spans) == 0 or len(doc_spans[0]) == 0:
            outputs.append(TransformerData.empty())
            continue
        first, last = doc_spans[0], doc_spans[-1]
        start_i = offsets[id(first.doc)] + first.start
        end_i = offsets[id(last.doc)] + last.end
        end = start + len(doc_spans)
        doc_tokens = batch.wordpieces[start:end]
        doc_align = batch.align[start_i:end_i]
        doc_align.data = doc_align.data - prev_tokens
        model_output = ModelOutput()
        for key, output in xp_output.items():
            model_output[key] = [t[start:end] for t in output] if isinstance(output, list) else output[start:end]
        outputs.append(TransformerData(wordpieces=doc_tokens, model_output=model_output, align=doc_align))
        prev_tokens += doc_tokens.input_ids.size
        start += len(doc_spans)
    return outputs


def inference_forward(model: Any, docs: List[Doc], is_train: bool) -> Tuple[FullTransformerBatch, Callable]:
    """`TransformerModel`'s forward pass with the vectorised span texts and
    alignment; the same spans, tokenisation, truncation and output."""
    tokenizer = model.tokenizer
    get_spans = model.attrs["get_spans"]
    transformer = model.layers[0]
    nested_spans = get_spans(docs)
    flat_spans = [span for doc_spans in nested_spans for span in doc_spans]
    # Doc.text joins the tokens on every call: once per doc, then slices.
    doc_texts = {id(doc): doc.text for doc in docs}
    texts = [doc_texts[id(span.doc)][span.start_char : span.end_char] for span in flat_spans]
    batch_encoding = huggingface_tokenize(tokenizer, texts)
    wordpieces = WordpieceBatch.from_batch_encoding(batch_encoding)
    if "offset_mapping" in batch_encoding:
        align = get_alignment_fast(flat_spans, batch_encoding["offset_mapping"])
    else:
        align = get_alignment(flat_spans, wordpieces.strings, tokenizer.all_special_tokens)
    wordpieces, align = truncate_oversize_splits(wordpieces, align, tokenizer.model_max_length)
    model_output, bp_tensors = transformer(wordpieces, is_train)
    output = FullTransformerBatch(spans=nested_spans, wordpieces=wordpieces, model_output=model_output, align=align)
    output.cached_doc_data = split_by_doc(output)

    def backprop(d_output: FullTransformerBatch) -> List[Doc]:
        bp_tensors(d_output.model_output)
        return docs

    return output, backprop
