"""Sequence packing for the exported encoders: the spans of a batch laid end
to end in rows of a fixed width, each attending only to itself.

spacy-transformers pads every span of a sub-batch to the longest one; on
NCBI-disease's test sentences 28% of the wordpieces that the encoder computed
were padding (the benchmark's "padding" column), and every sub-batch had a
shape of its own, which OpenVINO compiles kernels for. A packed encoder
(`export --packed`) takes rows of `PACK_WIDTH` wordpieces (wider for longer
spans), fills them first-fit by decreasing length, and gives each wordpiece
a segment number (its span's place in the row, 0 for padding) and its
position in its span. The exported graph attends only within a segment, so
every span gets what it gets alone, padded: the same position ids (its
column in the padded batch), the same keys. The runtime's transformer packs
its padded inputs before the call and unpacks the output to the padded
layout after it, so the rest of the pipeline does not change.
"""

from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Optional, Tuple

import numpy
import torch

# Row width of a packed batch (wordpieces): spans longer than this get rows
# as long as they are, rounded up to a multiple of WIDTH_STEP.
PACK_WIDTH = 128
WIDTH_STEP = 64
# A batch that fits in one row gets a row of its own size, rounded up to this
# (one short doc is not padded to PACK_WIDTH).
NARROW_STEP = 16
# Model types whose encoder takes a (batch, query, key) attention mask and
# numbers positions from 0 by column, so that packing is exact (RoBERTa
# numbers them after its padding index; DistilBERT takes no position ids).
PACKABLE_MODEL_TYPES = ("bert",)
SEGMENT_INPUT = "segment_ids"
POSITION_INPUT = "position_ids"


@dataclass
class PackedBatch:
    """A padded batch packed into rows.

    inputs (Dict[str, numpy.ndarray]): The packed encoder's inputs, (rows,
        width) int64 each: input_ids, segment_ids, position_ids and, when the
        padded batch had them, token_type_ids.
    source (numpy.ndarray): Per real wordpiece, its flat index in the packed
        (rows * width) output.
    target (numpy.ndarray): Per real wordpiece, its flat index in the padded
        (spans * length) output.
    shape (Tuple[int, int]): The padded batch's (spans, length).
    """

    inputs: Dict[str, numpy.ndarray]
    source: numpy.ndarray
    target: numpy.ndarray
    shape: Tuple[int, int]

    @property
    def width(self) -> int:
        return int(self.inputs["input_ids"].shape[1])


def row_width(
    longest: int, width: int = PACK_WIDTH, max_width: Optional[int] = None, total: Optional[int] = None
) -> int:
    """The width of the rows for spans of at most `longest` wordpieces: `width`,
    or `longest` rounded up to a multiple of `WIDTH_STEP`; at most `max_width`
    (the model's position embeddings: its graph may be bounded to them) where
    the spans fit. Spans of `total` wordpieces that fit in one row of `width`
    get one row of `total` rounded up to a multiple of `NARROW_STEP`."""
    if total is not None and total <= width:
        rows = max(NARROW_STEP, -(-total // NARROW_STEP) * NARROW_STEP)
    else:
        rows = max(width, -(-longest // WIDTH_STEP) * WIDTH_STEP)
    return max(longest, min(rows, max_width)) if max_width else rows


def first_fit(lengths: List[int], width: int) -> List[Tuple[int, int]]:
    """First-fit decreasing: per span, its row and its offset in the row.

    lengths (List[int]): The spans' lengths, each at most `width`.
    RETURNS (List[Tuple[int, int]]): (row, offset) per span, in span order.
    """
    if any(n > width for n in lengths):
        raise ValueError(f"a span of {max(lengths)} wordpieces does not fit in rows of {width}")
    free: List[int] = []
    places: List[Tuple[int, int]] = [(0, 0)] * len(lengths)
    for i in sorted(range(len(lengths)), key=lambda i: -lengths[i]):
        n = lengths[i]
        row = next((r for r, room in enumerate(free) if room >= n), len(free))
        if row == len(free):
            free.append(width)
        places[i] = (row, width - free[row])
        free[row] -= n
    return places


def is_packable(config: Any) -> bool:
    """Whether packing is exact for a model (by its Hugging Face config)."""
    return getattr(config, "model_type", None) in PACKABLE_MODEL_TYPES


def check_packable(config: Any) -> None:
    """Refuse, with the reason, a model that packing would change."""
    model_type = getattr(config, "model_type", None)
    if not is_packable(config):
        raise ValueError(
            f"packed batches are exact for {', '.join(PACKABLE_MODEL_TYPES)} models only "
            f"(3D attention masks, positions numbered from 0), not {model_type!r}: export it padded (--padded)"
        )


def pack_inputs(
    input_ids: Any,
    attention_mask: Any,
    token_type_ids: Optional[Any] = None,
    *,
    width: int = PACK_WIDTH,
    max_width: Optional[int] = None,
) -> PackedBatch:
    """Pack a padded batch (any padding side: a span's wordpieces are the
    positions its attention mask marks).

    input_ids, attention_mask, token_type_ids: (spans, length) arrays or
        tensors, as the Hugging Face model takes them.
    width (int): The rows' width for spans up to that long.
    max_width (Optional[int]): The widest rows the model takes (its position
        embeddings); unbounded when None.
    RETURNS (PackedBatch): The packed inputs and the maps back.
    """
    ids = _int64(input_ids)
    mask = _int64(attention_mask) != 0
    if ids.ndim != 2 or mask.shape != ids.shape:
        raise ValueError(
            f"expected input_ids and attention_mask of one (spans, length) shape, got {ids.shape} and {mask.shape}"
        )
    n_spans, length = ids.shape
    lengths = mask.sum(axis=1)
    width = row_width(int(lengths.max()) if n_spans else 0, width, max_width, total=int(lengths.sum()))
    places = first_fit(lengths.tolist(), width)
    rows = numpy.asarray([p[0] for p in places], dtype="int64")
    offsets = numpy.asarray([p[1] for p in places], dtype="int64")
    n_rows = int(rows.max()) + 1 if n_spans else 0
    span_of, column = numpy.nonzero(mask)  # row-major: each span's wordpieces in order
    starts = numpy.cumsum(lengths) - lengths
    in_span = numpy.arange(span_of.size) - numpy.repeat(starts, lengths)
    source = rows[span_of] * width + offsets[span_of] + in_span
    target = span_of * length + column
    segments = numpy.zeros(n_rows * width, dtype="int64")
    # Segment k + 1 for the k-th span placed in a row (0 stays padding).
    order = numpy.lexsort((offsets, rows))
    rank = numpy.empty(n_spans, dtype="int64")
    rank[order] = numpy.arange(n_spans) - numpy.searchsorted(rows[order], rows[order])
    segments[source] = rank[span_of] + 1
    inputs = {
        "input_ids": _scatter(ids, source, target, n_rows, width),
        SEGMENT_INPUT: segments.reshape((n_rows, width)),
        POSITION_INPUT: _place(column, source, n_rows, width),
    }
    if token_type_ids is not None:
        inputs["token_type_ids"] = _scatter(_int64(token_type_ids), source, target, n_rows, width)
    return PackedBatch(inputs=inputs, source=source, target=target, shape=(n_spans, length))


def pack_batch(inputs: Dict[str, Any], max_width: Optional[int] = None) -> PackedBatch:
    """`pack_inputs` for a padded batch's keyword inputs (input_ids,
    attention_mask and, if there, token_type_ids)."""
    if "attention_mask" not in inputs or "input_ids" not in inputs:
        raise ValueError(f"the packed transformer needs input_ids and attention_mask, got {sorted(inputs)}")
    return pack_inputs(inputs["input_ids"], inputs["attention_mask"], inputs.get("token_type_ids"), max_width=max_width)


def max_row_width(config: Any) -> Optional[int]:
    """The widest packed rows a model takes: its position embeddings."""
    return getattr(config, "max_position_embeddings", None)


def unpack_output(hidden: numpy.ndarray, batch: PackedBatch) -> numpy.ndarray:
    """The packed encoder's (rows, width, hidden) output in the padded
    (spans, length, hidden) layout; padding positions are zeros."""
    n_spans, length = batch.shape
    out = numpy.zeros((n_spans * length, hidden.shape[-1]), dtype=hidden.dtype)
    out[batch.target] = hidden.reshape((-1, hidden.shape[-1]))[batch.source]
    return out.reshape((n_spans, length, hidden.shape[-1]))


def segment_attention_mask(segment_ids: torch.Tensor) -> torch.Tensor:
    """(rows, width, width): a wordpiece attends to the wordpieces of its own
    segment. Padding (segment 0) attends to padding, so that no query row is
    masked entirely (a fully masked row can give NaN, and NaN times a zero
    attention weight is still NaN)."""
    return (segment_ids[:, :, None] == segment_ids[:, None, :]).to(torch.int64)


class PackedEncoder(torch.nn.Module):
    """A Hugging Face encoder that takes packed inputs (for the export): the
    segment ids become a 3D attention mask, which BERT-style models accept
    as (batch, query, key)."""

    def __init__(self, model: torch.nn.Module, input_names: List[str]) -> None:
        super().__init__()
        self.model = model
        self.input_names = list(input_names)

    def forward(self, *args: torch.Tensor) -> torch.Tensor:
        inputs = dict(zip(self.input_names, args))
        inputs["attention_mask"] = segment_attention_mask(inputs.pop(SEGMENT_INPUT))
        return self.model(**inputs).last_hidden_state


def run_packed(
    run: Callable[[Dict[str, numpy.ndarray]], numpy.ndarray],
    input_names: List[str],
    inputs: Dict[str, Any],
    max_width: Optional[int] = None,
) -> numpy.ndarray:
    """Call a packed graph with a padded batch's keyword inputs: pack, run
    `run` on the inputs the graph takes, unpack its (rows, width, hidden)
    output to (spans, length, hidden)."""
    batch = pack_batch(inputs, max_width)
    missing = [name for name in input_names if name not in batch.inputs]
    if missing:
        raise ValueError(f"the packed transformer needs the inputs {missing}, got {sorted(inputs)}")
    return unpack_output(run({name: batch.inputs[name] for name in input_names}), batch)


def packed_input_names(inputs: Dict[str, Any]) -> List[str]:
    """The packed encoder's input names for a padded batch's keyword inputs."""
    names = ["input_ids", SEGMENT_INPUT, POSITION_INPUT]
    return names + (["token_type_ids"] if "token_type_ids" in inputs else [])


def is_packed(input_names: List[str]) -> bool:
    """Whether a graph with these inputs takes packed batches."""
    return SEGMENT_INPUT in input_names


def _int64(array: Any) -> numpy.ndarray:
    if isinstance(array, torch.Tensor):
        array = array.numpy()
    return numpy.asarray(array, dtype="int64")


def _scatter(
    values: numpy.ndarray, source: numpy.ndarray, target: numpy.ndarray, n_rows: int, width: int
) -> numpy.ndarray:
    out = numpy.zeros(n_rows * width, dtype="int64")
    out[source] = values.reshape(-1)[target]
    return out.reshape((n_rows, width))


def _place(values: numpy.ndarray, source: numpy.ndarray, n_rows: int, width: int) -> numpy.ndarray:
    out = numpy.zeros(n_rows * width, dtype="int64")
    out[source] = values
    return out.reshape((n_rows, width))
