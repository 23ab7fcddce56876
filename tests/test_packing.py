"""Sequence packing (runtime/packing.py): the layout, its inverse, and a
packed BERT giving each span what the padded BERT gives it."""

import numpy
import pytest
import torch
from transformers import BertConfig, BertModel, RobertaConfig

from spacy_fastbioner.runtime import PACKED_BY_DEFAULT
from spacy_fastbioner.runtime.architecture import ARCHITECTURES
from spacy_fastbioner.runtime.packing import (
    PACK_WIDTH,
    PackedEncoder,
    check_packable,
    first_fit,
    is_packable,
    pack_inputs,
    packed_input_names,
    row_width,
    run_packed,
    unpack_output,
)


def padded_batch(rng, n_spans, longest, *, left=False, vocab=100):
    """Random input ids, attention mask and token types, padded right (or left)."""
    lengths = rng.integers(1, longest + 1, size=n_spans)
    width = int(lengths.max())
    ids = numpy.zeros((n_spans, width), dtype="int64")
    mask = numpy.zeros((n_spans, width), dtype="int64")
    types = numpy.zeros((n_spans, width), dtype="int64")
    for i, n in enumerate(lengths.tolist()):
        cols = slice(width - n, width) if left else slice(0, n)
        ids[i, cols] = rng.integers(1, vocab, size=n)
        mask[i, cols] = 1
        types[i, cols] = rng.integers(0, 2)
    return ids, mask, types


@pytest.mark.parametrize("seed", range(5))
def test_first_fit_places_every_span_without_overlap(seed):
    rng = numpy.random.default_rng(seed)
    lengths = rng.integers(0, 129, size=40).tolist()
    places = first_fit(lengths, 128)
    rows = {}
    for n, (row, offset) in zip(lengths, places):
        assert offset + n <= 128
        rows.setdefault(row, []).append((offset, offset + n))
    for spans in rows.values():
        spans.sort()
        assert all(a[1] <= b[0] for a, b in zip(spans, spans[1:]))
    # First fit decreasing never needs more rows than twice the lower bound.
    assert len(rows) <= max(1, 2 * -(-sum(lengths) // 128))
    with pytest.raises(ValueError, match="does not fit"):
        first_fit([10, 129], 128)


def test_row_width():
    assert row_width(30) == PACK_WIDTH
    assert row_width(129) == 192
    assert row_width(300, max_width=256) == 300  # the spans must fit
    assert row_width(100, max_width=64) == 100
    assert row_width(60, max_width=100) == 100
    # A batch that fits in one row gets a row of its size (multiple of 16).
    assert row_width(10, total=17) == 32 and row_width(3, total=3) == 16
    assert row_width(100, total=129) == PACK_WIDTH


def test_a_small_batch_is_one_narrow_row():
    ids = numpy.ones((2, 10), dtype="int64")
    mask = numpy.ones((2, 10), dtype="int64")
    mask[1, 7:] = 0
    batch = pack_inputs(ids, mask)
    assert batch.inputs["input_ids"].shape == (1, 32)
    assert batch.inputs["segment_ids"][0].tolist() == [1] * 10 + [2] * 7 + [0] * 15


@pytest.mark.parametrize("left", [False, True])
@pytest.mark.parametrize("seed", range(3))
def test_pack_layout_and_inverse(seed, left):
    rng = numpy.random.default_rng(seed)
    ids, mask, types = padded_batch(rng, 30, 90, left=left)
    batch = pack_inputs(ids, mask, types)
    packed = batch.inputs
    assert set(packed) == {"input_ids", "segment_ids", "position_ids", "token_type_ids"}
    assert all(a.shape == packed["input_ids"].shape for a in packed.values())
    assert packed["input_ids"].shape[1] == PACK_WIDTH
    # Fewer positions than padding gives, and every real wordpiece kept.
    assert packed["input_ids"].size < ids.size and (packed["segment_ids"] > 0).sum() == mask.sum()
    # Unpacking the packed inputs gives back the padded ones where the mask is set.
    for name, padded in (("input_ids", ids), ("token_type_ids", types)):
        back = unpack_output(packed[name][:, :, None].astype("f"), batch)[:, :, 0]
        numpy.testing.assert_array_equal(back[mask == 1], padded[mask == 1])
        assert not back[mask == 0].any()
    # Position ids are the padded columns, as the padded model numbers them.
    cols = numpy.broadcast_to(numpy.arange(ids.shape[1]), ids.shape)
    pos = unpack_output(packed["position_ids"][:, :, None].astype("f"), batch)[:, :, 0]
    numpy.testing.assert_array_equal(pos[mask == 1], cols[mask == 1])
    # A row's segments are contiguous runs numbered from 1; padding is 0.
    for row in packed["segment_ids"]:
        seen = [s for s in row if s]
        runs = [s for i, s in enumerate(seen) if i == 0 or s != seen[i - 1]]
        assert runs == list(range(1, len(runs) + 1))


def test_pack_rejects_mismatched_inputs():
    with pytest.raises(ValueError, match="one"):
        pack_inputs(numpy.zeros((2, 3)), numpy.ones((2, 4)))
    with pytest.raises(ValueError, match="needs input_ids and attention_mask"):
        run_packed(lambda feed: feed["input_ids"], ["input_ids"], {"input_ids": numpy.zeros((1, 2))})


@pytest.mark.parametrize("seed", range(3))
def test_packed_bert_equals_padded_bert(seed):
    """Each span's hidden states from the packed batch are those of the
    padded batch: the segment mask and the position ids make packing exact."""
    torch.manual_seed(seed)
    config = BertConfig(
        vocab_size=100,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=256,
    )
    model = BertModel(config, add_pooling_layer=False).eval()
    rng = numpy.random.default_rng(seed)
    ids, mask, types = padded_batch(rng, 25, 150 if seed == 0 else 50)
    inputs = {"input_ids": ids, "attention_mask": mask, "token_type_ids": types}
    encoder = PackedEncoder(model, packed_input_names(inputs))
    with torch.no_grad():
        expected = model(**{k: torch.from_numpy(v) for k, v in inputs.items()}).last_hidden_state.numpy()
        found = run_packed(
            lambda feed: encoder(*(torch.from_numpy(feed[n]) for n in encoder.input_names)).numpy(),
            encoder.input_names,
            inputs,
            max_width=256,
        )
    assert found.shape == expected.shape
    numpy.testing.assert_allclose(found[mask == 1], expected[mask == 1], atol=1e-5)


def test_only_bert_models_are_packed():
    assert is_packable(BertConfig()) and not is_packable(RobertaConfig())
    # Every runtime has a default (its effect on an export is tested in
    # test_runtime.py, ONNX unpacked, and test_openvino.py, OpenVINO packed).
    assert set(PACKED_BY_DEFAULT) == set(ARCHITECTURES) and all(isinstance(v, bool) for v in PACKED_BY_DEFAULT.values())
    check_packable(BertConfig())
    with pytest.raises(ValueError, match="--padded"):
        check_packable(RobertaConfig())
