"""The transformer model's forward pass for inference, with the spaCy side
vectorised.

spacy-transformers' `TransformerModel` forward builds each span's text by
joining its tokens and aligns tokens to wordpieces through Python dicts and
sets keyed by `Token` objects. At int8 speeds these took about a tenth of the
pipeline's time (cProfile of `nlp.pipe` over NCBI-disease test sentences with
the ONNX int8 student). Here the span texts are slices of `doc.text` and the
alignment is computed with NumPy from the tokens' character offsets and the
tokenizer's offset mapping, and a fast tokenizer's Rust `encode_batch` is
called directly: the Hugging Face wrapper converts every encoding to Python
dicts and spacy-transformers then looks up every wordpiece's string by id,
which together cost as much as the rest of the spaCy side at int8 speeds. A
BERT tokenizer's wordpieces come from a cache of space-separated chunks
(`wordpiece_cache.py`), and the doc texts from the sentence splitter
(`doc_text.py`). The output is the same `FullTransformerBatch`: `tokenize_texts` returns what
`huggingface_tokenize` and `WordpieceBatch.from_batch_encoding` return,
`get_alignment_fast` what `get_alignment_via_offset_mapping` returns, and
`split_by_doc` what `FullTransformerBatch.split_by_doc` returns, which the
tests check on varied text. Both find a token's place in the batch as its
doc's offset plus `token.i`, where spacy-transformers builds a dict keyed by
every `Token` of the batch.
"""

from itertools import chain
from typing import Any, Callable, Dict, List, Optional, Tuple, cast

import numpy
import torch
from spacy.attrs import IDX, LENGTH
from spacy.tokens import Doc, Span
from spacy_transformers.align import get_alignment
from spacy_transformers.data_classes import FullTransformerBatch, TransformerData, WordpieceBatch
from spacy_transformers.layers.transformer_model import huggingface_tokenize
from spacy_transformers.truncate import truncate_oversize_splits
from thinc.api import torch2xp
from thinc.types import Floats2d, Ints2d, Ragged
from transformers import PreTrainedTokenizerFast
from transformers.file_utils import ModelOutput
from transformers.modeling_outputs import BaseModelOutput

from ..corpora.doc_text import take_text
from .ragged_index import concat_ranges
from .wordpiece_cache import WordpieceCache


def get_alignment_fast(spans: List[Span], offset_mapping: numpy.ndarray) -> Ragged:
    """The alignment of each unique token of the spans to its wordpieces in
    the flattened (padded) wordpiece batch: the result of spacy-transformers'
    `get_alignment_via_offset_mapping`, computed with NumPy for the whole
    batch at once.

    A wordpiece is aligned to the token that covers each of its characters,
    where a token covers its characters and the one after it (so that a
    wordpiece starting on whitespace still aligns), a later token winning;
    only the span's own tokens count.

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
    # Each doc (in the order of its first span) gets a range of token
    # positions and a range of characters in one map of the whole batch.
    doc_index: Dict[int, int] = {}
    batch_docs: List[Doc] = []
    for span in spans:
        if id(span.doc) not in doc_index:
            doc_index[id(span.doc)] = len(batch_docs)
            batch_docs.append(span.doc)
    doc_arrays = [doc.to_array([IDX, LENGTH]).reshape((-1, 2)) for doc in batch_docs]
    tokens_per_doc = numpy.fromiter(map(len, doc_arrays), dtype="int64", count=len(doc_arrays))
    n_tokens = int(tokens_per_doc.sum())
    token_arrays = numpy.concatenate(doc_arrays).astype("int64") if doc_arrays else numpy.zeros((0, 2), "int64")
    # A doc's characters: up to its last token's end, and one more that the
    # last token covers.
    last = numpy.cumsum(tokens_per_doc) - 1
    doc_size = numpy.where(tokens_per_doc > 0, token_arrays[last.clip(0), 0] + token_arrays[last.clip(0), 1] + 2, 0)
    doc_chars = numpy.cumsum(doc_size) - doc_size
    doc_first = numpy.cumsum(tokens_per_doc) - tokens_per_doc
    char_to_token = numpy.full(int(doc_size.sum()), -1, dtype="int64")
    if n_tokens:
        idx = token_arrays[:, 0] + numpy.repeat(doc_chars, tokens_per_doc)
        covered = token_arrays[:, 1] + 1
        # Later tokens overwrite earlier ones, as the loop over tokens does.
        char_to_token[concat_ranges(idx, covered)] = numpy.repeat(numpy.arange(n_tokens), covered)
    docs = {key: (int(doc_first[i]), int(doc_chars[i])) for key, i in doc_index.items()}
    # Per span: its first character in the map, its text's size (+1), its last token.
    live = [i for i, span in enumerate(spans) if len(span)]
    span_base = numpy.zeros(len(spans), dtype="int64")
    span_size = numpy.zeros(len(spans), dtype="int64")
    span_last = numpy.zeros(len(spans), dtype="int64")
    for i in live:
        span = spans[i]
        first_token, first_char = docs[id(span.doc)]
        span_base[i] = first_char + span.start_char
        span_size[i] = span.end_char - span.start_char + 1
        span_last[i] = first_token + span.end - 1
    starts = offset_mapping[:, :, 0] if n_wp else numpy.zeros((len(spans), 0), dtype="int64")
    lengths = numpy.maximum(offset_mapping[:, :, 1] - starts, 0) if n_wp else starts
    lengths[span_size == 0] = 0  # empty spans align nothing
    flat_lengths = lengths.reshape(-1)
    wp_chars = concat_ranges(starts.reshape(-1), flat_lengths)
    wp_index = numpy.repeat(numpy.arange(flat_lengths.size), flat_lengths)
    span_of = wp_index // max(n_wp, 1)
    keep = (wp_chars >= 0) & (wp_chars < span_size[span_of])
    wp_chars, wp_index, span_of = wp_chars[keep], wp_index[keep], span_of[keep]
    tokens = char_to_token[span_base[span_of] + wp_chars]
    # The character after a span's text is its last token's (the next token,
    # outside the span, may also cover it in the map).
    at_end = wp_chars == span_size[span_of] - 1
    tokens[at_end] = span_last[span_of[at_end]]
    found = tokens >= 0
    token_pos, wp_index = tokens[found], wp_index[found]
    if token_pos.size:
        # Each (token, wordpiece) pair once, sorted: without a sort where the
        # pairs come in order already (spans that do not overlap).
        pairs = token_pos * (len(spans) * n_wp + 1) + wp_index
        steps = numpy.diff(pairs)
        pairs = pairs[numpy.concatenate(([True], steps > 0))] if (steps >= 0).all() else numpy.unique(pairs)
        token_pos = pairs // (len(spans) * n_wp + 1)
        wp_index = pairs % (len(spans) * n_wp + 1)
    lengths_out = numpy.bincount(token_pos, minlength=n_tokens).astype("i")
    return Ragged(cast(Any, wp_index.astype("i")), cast(Any, lengths_out))


def tokenize_texts(
    tokenizer: Any, texts: List[str], *, use_cache: bool = True
) -> Tuple[WordpieceBatch, Optional[numpy.ndarray]]:
    """The wordpieces of the texts, padded to the longest, and their character
    offsets: what `huggingface_tokenize` followed by
    `WordpieceBatch.from_batch_encoding` gives (and the encoding's
    "offset_mapping", None for a slow tokenizer).

    A fast tokenizer padded on the right is called through its Rust tokenizer
    (for a BERT tokenizer, chunk by chunk through `WordpieceCache`) and padded
    with NumPy; any other goes through `huggingface_tokenize`.

    tokenizer: The Hugging Face tokenizer.
    texts (List[str]): The span texts.
    use_cache (bool): Take a BERT tokenizer's wordpieces from its cache.
    RETURNS (Tuple[WordpieceBatch, Optional[numpy.ndarray]]): The batch and
        the (n_texts, n_wordpieces, 2) offsets.
    """
    if (
        not isinstance(tokenizer, PreTrainedTokenizerFast)
        or getattr(tokenizer, "padding_side", "") != "right"
        or not texts
    ):
        encoding = huggingface_tokenize(tokenizer, texts)
        offsets = encoding.get("offset_mapping")
        return WordpieceBatch.from_batch_encoding(encoding), offsets
    tokenizer = cast(Any, tokenizer)  # transformers' annotations lack the tokenizer's attributes
    backend = tokenizer.backend_tokenizer
    # The Hugging Face call sets both per call (no truncation, padding to the
    # longest); padding here is done below, so the backend must not pad.
    if backend.truncation is not None:
        backend.no_truncation()
    if backend.padding is not None:
        backend.no_padding()
    cache = WordpieceCache.for_tokenizer(tokenizer) if use_cache else None
    if cache is not None:
        lengths, rows, flat_type_ids = cache.encode(texts)
        flat_ids, flat_offsets = rows[:, 0], rows[:, 1:]
    else:
        encodings = backend.encode_batch(texts, add_special_tokens=True)
        lengths = numpy.fromiter((len(e.ids) for e in encodings), dtype="int64", count=len(encodings))
        total = int(lengths.sum())
        flat_ids = numpy.fromiter(chain.from_iterable(e.ids for e in encodings), dtype="int64", count=total)
        flat_offsets = numpy.fromiter(
            chain.from_iterable(chain.from_iterable(e.offsets for e in encodings)), dtype="int64", count=2 * total
        ).reshape((-1, 2))
        flat_type_ids = numpy.fromiter(chain.from_iterable(e.type_ids for e in encodings), dtype="int64", count=total)
    n_wp = int(lengths.max())
    real = numpy.arange(n_wp)[None, :] < lengths[:, None]
    input_ids = numpy.full(real.shape, tokenizer.pad_token_id, dtype="int64")
    input_ids[real] = flat_ids
    offsets = numpy.zeros(real.shape + (2,), dtype="int64")
    offsets[real] = flat_offsets
    token_type_ids = None
    if "token_type_ids" in tokenizer.model_input_names:
        token_type_ids = numpy.full(real.shape, tokenizer.pad_token_type_id, dtype="int64")
        token_type_ids[real] = flat_type_ids
    pad = tokenizer.pad_token
    if cache is not None:
        flat_strings = cache.wordpiece_strings(flat_ids)
        ends = numpy.cumsum(lengths).tolist()
        strings = [flat_strings[end - n : end] + [pad] * (n_wp - n) for n, end in zip(lengths.tolist(), ends)]
    else:
        strings = [e.tokens + [pad] * (n_wp - len(e.ids)) for e in encodings]
    wordpieces = WordpieceBatch(
        strings=strings,
        input_ids=cast(Ints2d, input_ids),
        attention_mask=cast(Floats2d, real.astype("float32")),
        # from_batch_encoding counts the wordpieces that are not the pad token.
        lengths=[int(n) for n in (input_ids != tokenizer.pad_token_id).sum(axis=1)],
        token_type_ids=cast(Optional[Ints2d], token_type_ids),
    )
    return wordpieces, offsets


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
    # Each doc's rows of the alignment, sliced here rather than by
    # `Ragged.__getitem__`, which builds a Ragged that is then replaced.
    align_rows = batch.align.dataXd
    align_lengths = batch.align.lengths
    bounds = [0] + numpy.cumsum(numpy.asarray(align_lengths)).tolist()
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
        doc_align = Ragged(align_rows[bounds[start_i] : bounds[end_i]] - prev_tokens, align_lengths[start_i:end_i])
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
    # Doc.text joins the tokens on every call: once per doc (or none, where
    # the sentence splitter read it already), then slices.
    doc_texts = {id(doc): take_text(doc) for doc in docs}
    texts = [doc_texts[id(span.doc)][span.start_char : span.end_char] for span in flat_spans]
    wordpieces, offset_mapping = tokenize_texts(tokenizer, texts)
    if offset_mapping is not None:
        align = get_alignment_fast(flat_spans, offset_mapping)
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
