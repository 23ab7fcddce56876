"""The ONNX Runtime transformer (`spacy fastbioner export`) on tiny BERTs,
uncased and cased: equivalence with PyTorch, int8, serialisation, loading
without pickle, and the CLI."""

import pickle
import re
from pathlib import Path

import numpy
import pytest
import spacy
import srsly
import torch
from typer.testing import CliRunner

pytest.importorskip("onnxruntime")
pytest.importorskip("onnx")

from helpers import (  # noqa: E402
    EXPORT_TEXTS,
    head_logits,
    make_cased_tiny_bert,
    make_examples,
    make_pipeline,
    synthetic_sentences,
    text_entities,
    train_pipeline,
)

from spacy_fastbioner.cli import fastbioner_cli  # noqa: E402
from spacy_fastbioner.encoder.transformer import find_transformer  # noqa: E402
from spacy_fastbioner.runtime import ONNX_ARCHITECTURE, OnnxTransformer, export_pipeline  # noqa: E402
from spacy_fastbioner.runtime.quantize import quantize_pipeline  # noqa: E402


@pytest.fixture(scope="module", params=["uncased", "cased"])
def trained(request, tiny_bert, tmp_path_factory):
    """A tiny trained PyTorch pipeline (uncased or cased tokenizer)."""
    bert = tiny_bert if request.param == "uncased" else make_cased_tiny_bert(tmp_path_factory.mktemp("cased"))
    nlp = make_pipeline(bert)
    train_pipeline(nlp, make_examples(nlp, synthetic_sentences(120, seed=1)), epochs=4)
    assert any(text_entities(nlp)), "the tiny pipeline predicts no entities: the checks would be vacuous"
    return nlp


@pytest.fixture(scope="module")
def exported(trained, tmp_path_factory):
    root = tmp_path_factory.mktemp("onnx")
    paths = {}
    for name, int8 in (("fp32", False), ("int8", True)):
        paths[name] = root / name
        export_pipeline(trained, int8=int8).to_disk(paths[name])
    paths["packed"] = root / "packed"
    export_pipeline(trained, int8=False, packed=True).to_disk(paths["packed"])
    return paths


def test_fp32_export_matches_pytorch(trained, exported):
    nlp = spacy.load(exported["fp32"])
    trf = find_transformer(nlp)
    assert nlp.config["components"]["transformer"]["model"]["@architectures"] == ONNX_ARCHITECTURE
    assert isinstance(trf.model.transformer, OnnxTransformer) and not trf.model.transformer.is_int8
    assert nlp.pipe_names == trained.pipe_names
    expected, found = head_logits(trained), head_logits(nlp)
    assert len(expected) == len(found) == 4
    for x, y in zip(expected, found):
        assert x.shape == y.shape
        numpy.testing.assert_allclose(y, x, atol=1e-3)
    assert text_entities(nlp) == text_entities(trained)


def test_packed_export_matches_pytorch(trained, exported):
    """The packed graph (spans end to end in rows, packing.py) gives the
    PyTorch pipeline's logits and entities, and stays packed when saved."""
    nlp = spacy.load(exported["packed"])
    transformer = find_transformer(nlp).model.transformer
    assert transformer.packed and not find_transformer(spacy.load(exported["fp32"])).model.transformer.packed
    assert "segment_ids" in transformer.input_names and "attention_mask" not in transformer.input_names
    assert nlp.config["components"]["transformer"]["model"]["packed"] is True
    assert nlp.meta["fastbioner"]["packed"] is True
    for x, y in zip(head_logits(trained), head_logits(nlp)):
        numpy.testing.assert_allclose(y, x, atol=1e-3)
    assert text_entities(nlp) == text_entities(trained)
    from_bytes = spacy.blank("en").from_config(nlp.config).from_bytes(nlp.to_bytes())
    assert find_transformer(from_bytes).model.transformer.packed
    assert text_entities(from_bytes) == text_entities(trained)


def test_int8_export(trained, exported):
    nlp = spacy.load(exported["int8"])
    transformer = find_transformer(nlp).model.transformer
    assert transformer.is_int8
    assert nlp.meta["fastbioner"]["runtime"] == "onnx"
    assert "onnxruntime>=1.17" in nlp.meta["requirements"]
    fp32_model = (exported["fp32"] / "transformer" / "model").stat().st_size
    assert (exported["int8"] / "transformer" / "model").stat().st_size < fp32_model
    n_fp32 = find_transformer(spacy.load(exported["fp32"])).model.transformer.num_parameters()
    assert transformer.num_parameters() == n_fp32
    for x, y in zip(head_logits(trained), head_logits(nlp)):
        assert numpy.abs(x - y).max() < 0.5 * max(1.0, numpy.abs(x).max())


def test_roundtrips(exported):
    nlp = spacy.load(exported["fp32"])
    expected = text_entities(nlp)
    from_bytes = spacy.blank("en").from_config(nlp.config).from_bytes(nlp.to_bytes())
    assert text_entities(from_bytes) == expected
    trf, other = find_transformer(nlp), find_transformer(from_bytes)
    assert other.model.transformer.model_bytes == trf.model.transformer.model_bytes
    assert other.model.tokenizer.get_vocab() == trf.model.tokenizer.get_vocab()
    reloaded = find_transformer(spacy.load(exported["fp32"])).from_bytes(trf.to_bytes())
    assert reloaded.model.transformer.model_bytes == trf.model.transformer.model_bytes
    for x, y in zip(head_logits(nlp), head_logits(from_bytes)):
        numpy.testing.assert_array_equal(x, y)


def test_config_initialize_exports_from_a_name(tiny_bert):
    """The architecture in a config initialised from a model name (as TransformerModel.v3)."""
    nlp = make_pipeline(tiny_bert)
    config = nlp.config.copy()
    config["components"]["transformer"]["model"]["@architectures"] = ONNX_ARCHITECTURE
    config["components"]["transformer"]["model"]["int8"] = False
    onnx_nlp = spacy.blank("en").from_config(config)
    examples = make_examples(onnx_nlp, synthetic_sentences(8, seed=2))
    onnx_nlp.get_pipe("transformer").initialize(lambda: examples, nlp=onnx_nlp)
    assert isinstance(find_transformer(onnx_nlp).model.transformer, OnnxTransformer)
    with pytest.raises(ValueError, match="cannot be trained"):
        onnx_nlp.update(examples)


def test_loading_runs_no_pickle(exported, monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("pickle code ran while loading")

    for module, name in ((pickle, "load"), (pickle, "loads"), (pickle, "Unpickler"), (torch, "load")):
        monkeypatch.setattr(module, name, refuse)
    nlp = spacy.load(exported["int8"])
    assert any(text_entities(nlp))


class _Payload:
    """Unpickling this runs code: it must never happen on load."""

    def __reduce__(self):
        return (Path.touch, (Path(__file__).parent / "PWNED",))


def test_refuses_pickled_and_pytorch_data(trained, exported, tmp_path):
    path = tmp_path / "p"
    spacy.load(exported["fp32"]).to_disk(path)
    model_file = path / "transformer" / "model"
    msg = srsly.msgpack_loads(model_file.read_bytes())
    # thinc's model bytes: one list of shim bytes per node of model.walk().
    shims = next(node_shims for node_shims in msg["shims"] if node_shims)
    shim = srsly.msgpack_loads(shims[0])
    shim["onnx"] = pickle.dumps(_Payload())
    shims[0] = srsly.msgpack_dumps(shim)
    model_file.write_bytes(srsly.msgpack_dumps(msg))
    with pytest.raises(ValueError, match="not a valid ONNX model"):
        spacy.load(path)
    assert not (Path(__file__).parent / "PWNED").exists()
    # A PyTorch transformer's data (a torch.save pickle) under the ONNX architecture.
    shims[0] = find_transformer(trained).model.layers[0].shims[0].to_bytes()
    model_file.write_bytes(srsly.msgpack_dumps(msg))
    with pytest.raises(ValueError, match="fastbioner export"):
        spacy.load(path)


def test_export_rejects_bad_input(trained):
    with pytest.raises(ValueError, match="runtime"):
        export_pipeline(trained, runtime="tensorrt")
    with pytest.raises(ValueError, match="fp32 PyTorch model"):
        export_pipeline(quantize_pipeline(trained))
    with pytest.raises(ValueError, match="positive"):
        export_pipeline(trained, max_batch_items=0)


def test_smoothing_keeps_the_fp32_function(trained):
    """SmoothQuant's rescaling moves range from the Linear inputs into the
    weights: the same hidden states in fp32, smoother inputs for int8."""
    import copy

    from spacy_fastbioner.encoder.inputs import encoder_inputs
    from spacy_fastbioner.encoder.transformer import hf_model
    from spacy_fastbioner.runtime.smoothing import SmoothedLinear, input_ranges, smooth_linear_inputs, target_layers

    model = hf_model(find_transformer(trained))
    n_layers = model.config.num_hidden_layers
    names = target_layers(model)
    assert len(names) == 6 * n_layers and not any(name.startswith("pooler") for name in names)
    calibration = make_examples(trained, synthetic_sentences(24, seed=4))
    batches = encoder_inputs(trained, [eg.reference for eg in calibration])
    assert batches and all("input_ids" in b for b in batches)
    before = input_ranges(model, batches, names)
    smoothed = copy.deepcopy(model)
    assert smooth_linear_inputs(smoothed, batches, alpha=0.9) == names
    assert all(isinstance(smoothed.get_submodule(name), SmoothedLinear) for name in names)
    model.eval(), smoothed.eval()
    with torch.no_grad():
        for kwargs in batches:
            expected = model(**kwargs).last_hidden_state
            numpy.testing.assert_allclose(smoothed(**kwargs).last_hidden_state, expected, rtol=1e-4, atol=1e-4)
    # What the MatMuls see: each layer's channel ranges are closer to each other.
    inner = {name + ".linear": name for name in names}
    after = input_ranges(smoothed, batches, list(inner))
    spread = {name: float(r.max() / r.clamp(min=1e-6).median()) for name, r in before.items()}
    smoothed_spread = {inner[name]: float(r.max() / r.clamp(min=1e-6).median()) for name, r in after.items()}
    assert all(smoothed_spread[name] < spread[name] for name in names), (spread, smoothed_spread)
    with pytest.raises(ValueError, match="alpha"):
        smooth_linear_inputs(copy.deepcopy(model), batches, alpha=1.5)
    with pytest.raises(ValueError, match="no calibration input"):
        smooth_linear_inputs(copy.deepcopy(model), [], alpha=0.5)


def test_smoothed_int8_export(trained, tmp_path):
    calibration = [eg.reference for eg in make_examples(trained, synthetic_sentences(24, seed=4))]
    nlp = export_pipeline(trained, int8=True, calibration=calibration, smooth_alpha=0.9)
    assert nlp.meta["fastbioner"]["smoothing"] == {"alpha": 0.9, "calibration_docs": 24}
    assert export_pipeline(trained, int8=True).meta["fastbioner"]["smoothing"] is None
    nlp.to_disk(tmp_path / "smoothed")
    loaded = spacy.load(tmp_path / "smoothed")
    transformer = find_transformer(loaded).model.transformer
    assert transformer.is_int8
    import onnx

    ops = [node.op_type for node in onnx.load_from_string(transformer.model_bytes).graph.node]
    assert ops.count("Mul") >= 6 * trained.get_pipe("transformer").model.transformer.config.num_hidden_layers
    for found, expected in zip(head_logits(loaded), head_logits(trained)):
        assert numpy.corrcoef(found.ravel(), expected.ravel())[0, 1] > 0.99
    with pytest.raises(ValueError, match="fp32 export needs none"):
        export_pipeline(trained, int8=False, calibration=calibration)
    with pytest.raises(ValueError, match="no calibration docs"):
        export_pipeline(trained, int8=True, calibration=[])


def test_session_follows_torch_threads(exported):
    transformer = find_transformer(spacy.load(exported["fp32"])).model.transformer
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = transformer.session
        assert transformer.session is one
        torch.set_num_threads(2)
        assert transformer.session is not one
        assert transformer.session.get_session_options().intra_op_num_threads == 2
    finally:
        torch.set_num_threads(before)


def test_export_cli(trained, tmp_path):
    trained.to_disk(tmp_path / "fp32")
    args = ["export", str(tmp_path / "fp32"), str(tmp_path / "out"), "--runtime", "onnx", "--max-batch-items", "256"]
    result = CliRunner().invoke(fastbioner_cli, args)
    assert result.exit_code == 0, result.output
    nlp = spacy.load(tmp_path / "out")
    assert find_transformer(nlp).model.transformer.is_int8
    assert nlp.get_pipe("transformer").cfg["max_batch_items"] == 256
    from helpers import write_iob

    data = write_iob(tmp_path / "test.tsv", synthetic_sentences(30, seed=5))
    args = ["export", str(tmp_path / "fp32"), str(tmp_path / "out32"), "-r", "onnx", "--fp32", "--verify", str(data)]
    result = CliRunner().invoke(fastbioner_cli, args)
    assert result.exit_code == 0, result.output
    assert "0 of 30 docs with other entities" in " ".join(result.output.split())
    args = [
        "export",
        str(tmp_path / "fp32"),
        str(tmp_path / "smooth"),
        "--runtime",
        "onnx",
        "--calibration",
        str(data),
        "--n-calibration",
        "8",
    ]
    result = CliRunner().invoke(fastbioner_cli, args)
    assert result.exit_code == 0, result.output
    assert "smoothed on 8 docs" in " ".join(result.output.split())
    assert spacy.load(tmp_path / "smooth").meta["fastbioner"]["smoothing"]["calibration_docs"] == 8
    args = ["export", str(tmp_path / "fp32"), str(tmp_path / "x"), "-r", "onnx", "--fp32", "--calibration", str(data)]
    result = CliRunner().invoke(fastbioner_cli, args)
    assert result.exit_code == 1 and "--calibration" in result.output
    bad = CliRunner().invoke(
        fastbioner_cli, ["export", str(tmp_path / "fp32"), str(tmp_path / "x"), "--runtime", "tvm"]
    )
    assert bad.exit_code == 1 and "runtime" in bad.output


def test_benchmark_rows_per_runtime_and_threads(trained, exported, tmp_path):
    from helpers import write_iob

    from spacy_fastbioner.benchmark import BenchmarkSettings, benchmark_threads, markdown_table, write_report

    trained.to_disk(tmp_path / "pytorch")
    data = write_iob(tmp_path / "test.tsv", synthetic_sentences(24, seed=11))
    models = [
        ("pytorch", str(tmp_path / "pytorch")),
        ("onnx", str(exported["fp32"])),
        ("onnx-int8", str(exported["int8"])),
        ("pytorch-eager", f"{tmp_path / 'pytorch'}#eager"),
    ]
    settings = BenchmarkSettings(batch_size=8, n_batches=2, warmup=1, n_latency=2, memory=False)
    results = benchmark_threads(models, data, settings, [1, 2], log=lambda _: None)
    rows = {m["name"]: m for m in results["models"]}
    assert set(rows) == {f"{name} ({n}t)" for name, _ in models for n in (1, 2)}
    for name, row in rows.items():
        assert row["transformer"]["runtime"] == ("pytorch" if name.startswith("pytorch") else "onnxruntime")
        assert row["path"] == (str(tmp_path / "pytorch") if name.startswith("pytorch") else row["path"])
        assert row["speed"]["raw_forward_words_per_sec"]["median"] > 0
        assert row["speed"]["pipeline_vs_raw"]["median"] > 0
        assert row["parameters"]["transformer"] > 0
    assert rows["onnx-int8 (1t)"]["transformer"]["quantized"] and not rows["onnx (2t)"]["transformer"]["quantized"]
    assert rows["onnx (1t)"]["accuracy"]["f"] == rows["pytorch (1t)"]["accuracy"]["f"]
    # The export keeps what last_hidden_state needs: BERT's pooler is left out.
    pooler = sum(p.numel() for p in find_transformer(trained).model.transformer.pooler.parameters())
    assert rows["onnx (1t)"]["parameters"]["transformer"] == rows["pytorch (1t)"]["parameters"]["transformer"] - pooler
    assert rows["onnx (2t)"]["threads"] == 2 and results["environment"]["torch_threads"] == [1, 2]
    cpu = results["environment"]["cpu"]
    assert cpu["model"]
    table = markdown_table(results)
    assert "| onnx-int8 (2t) | ONNX Runtime | 2 |" in table and "| pytorch (1t) | PyTorch | 1 |" in table
    assert f"CPU: {cpu['model']}" in table and "int8:" in table
    assert rows["pytorch-eager (1t)"]["transformer"]["attention"] == "eager"
    assert rows["pytorch (1t)"]["transformer"]["attention"] == "sdpa"
    assert rows["pytorch-eager (1t)"]["accuracy"]["f"] == pytest.approx(rows["pytorch (1t)"]["accuracy"]["f"])
    assert "| pytorch-eager (1t) | PyTorch (eager) | 1 |" in table
    files = write_report(results, tmp_path / "report")
    assert files["plot"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_cpu_info(tmp_path):
    from spacy_fastbioner.benchmark.cpu import cpu_info, describe_cpu

    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text(
        "processor\t: 0\nmodel name\t: AMD EPYC 9454\nflags\t\t: fpu avx2 avx512f avx512_vnni avx512_bf16\n\n"
        "processor\t: 1\nmodel name\t: other\nflags\t\t: fpu\n",
        encoding="utf8",
    )
    info = cpu_info(cpuinfo)
    assert info["model"] == "AMD EPYC 9454"
    assert info["int8"] == ["avx512_vnni"] and info["bf16"] == ["avx512_bf16"]
    assert describe_cpu(info) == "AMD EPYC 9454; int8: avx512_vnni; bf16: avx512_bf16"
    cpuinfo.write_text("processor\t: 0\nmodel name\t: Old Xeon\nflags\t\t: fpu avx2\n", encoding="utf8")
    assert describe_cpu(cpu_info(cpuinfo)) == "Old Xeon; int8: none; bf16: none"
    fallback = cpu_info(tmp_path / "missing")
    assert fallback["source"] == "platform" and fallback["int8"] is None
    assert "int8: unknown" in describe_cpu(fallback)


@pytest.mark.parametrize("seed", range(4))
def test_fast_alignment_equals_spacy_transformers(tiny_bert, seed):
    """The vectorised alignment of the ONNX forward pass is spacy-transformers'
    own, on text with odd spacing, unknown characters and overlapping spans."""
    import random

    from spacy_transformers.align import get_alignment_via_offset_mapping
    from spacy_transformers.data_classes import FullTransformerBatch, WordpieceBatch
    from spacy_transformers.layers.transformer_model import huggingface_tokenize
    from spacy_transformers.span_getters import configure_strided_spans
    from transformers import AutoTokenizer
    from transformers.modeling_outputs import BaseModelOutput

    from spacy_fastbioner.runtime.fast_forward import get_alignment_fast, split_by_doc

    rng = random.Random(seed)
    pieces = [
        "cancer",
        "of",
        "the",
        "colon",
        "Aspirin",
        "5-FU",
        "(",
        ")",
        "naloxone,",
        "ΔF508",
        "β-catenin",
        "  ",
        "\n",
        "x",
        "lithium",
        "carbonate.",
        "\u00a0",
        "tumour",
        "😀",
        "[UNK]",
    ]
    nlp = spacy.blank("en")
    docs = []
    for _ in range(6):
        words = [rng.choice(pieces) for _ in range(rng.randint(0, 40))]
        spaces = [rng.random() < 0.7 for _ in words]
        docs.append(spacy.tokens.Doc(nlp.vocab, words=words, spaces=spaces) if words else nlp.make_doc(""))
    docs.append(docs[1])  # the same doc twice in a batch
    tokenizer = AutoTokenizer.from_pretrained(str(tiny_bert), use_fast=True)
    get_spans = configure_strided_spans(window=rng.choice([4, 7, 16]), stride=rng.choice([2, 3, 4]))
    spans = [span for doc_spans in get_spans(docs) for span in doc_spans]
    assert spans
    encoding = huggingface_tokenize(tokenizer, [span.text for span in spans])
    expected = get_alignment_via_offset_mapping(spans, encoding["offset_mapping"])
    found = get_alignment_fast(spans, encoding["offset_mapping"])
    numpy.testing.assert_array_equal(found.lengths, expected.lengths)
    numpy.testing.assert_array_equal(found.dataXd, expected.dataXd)
    assert found.dataXd.dtype == expected.dataXd.dtype
    # Random wordpiece offsets, as other tokenizers give (starting on a space,
    # overlapping, empty, past the end of the span's text).
    n_wp = 12
    offsets = numpy.zeros((len(spans), n_wp, 2), dtype="int64")
    for i, span in enumerate(spans):
        for j in range(n_wp):
            start = rng.randint(0, len(span.text) + 2)
            offsets[i, j] = (start, start + rng.randint(0, 4))
    expected = get_alignment_via_offset_mapping(spans, offsets)
    found = get_alignment_fast(spans, offsets)
    numpy.testing.assert_array_equal(found.lengths, expected.lengths)
    numpy.testing.assert_array_equal(found.dataXd, expected.dataXd)
    assert [span.doc.text[span.start_char : span.end_char] for span in spans] == [span.text for span in spans]
    # The per-doc split of a batch of these spans is spacy-transformers' own.
    nested = get_spans(docs)
    wordpieces = WordpieceBatch.from_batch_encoding(encoding)
    hidden = torch.from_numpy(numpy.random.default_rng(seed).random((len(spans), wordpieces.input_ids.shape[1], 3)))
    batch = FullTransformerBatch(nested, wordpieces, BaseModelOutput(last_hidden_state=hidden), expected)
    for found_doc, expected_doc in zip(split_by_doc(batch), batch.split_by_doc(), strict=True):
        numpy.testing.assert_array_equal(found_doc.align.dataXd, expected_doc.align.dataXd)
        numpy.testing.assert_array_equal(found_doc.align.lengths, expected_doc.align.lengths)
        numpy.testing.assert_array_equal(found_doc.wordpieces.input_ids, expected_doc.wordpieces.input_ids)
        assert list(found_doc.model_output) == list(expected_doc.model_output)
        for key, value in expected_doc.model_output.items():
            numpy.testing.assert_array_equal(found_doc.model_output[key], value)
    assert any(doc_data.model_output for doc_data in split_by_doc(batch))


@pytest.mark.parametrize("cased", [False, True])
def test_fast_tokenize_equals_spacy_transformers(tiny_bert, tmp_path, cased):
    """`tokenize_texts` (the Rust tokenizer called directly) gives what
    spacy-transformers' `huggingface_tokenize` and `from_batch_encoding` give:
    ids, mask, type ids, strings, lengths and offsets, also after the
    Hugging Face wrapper left padding and truncation set on the backend."""
    import random

    from spacy_transformers.data_classes import WordpieceBatch
    from spacy_transformers.layers.transformer_model import huggingface_tokenize
    from transformers import AutoTokenizer

    from spacy_fastbioner.runtime.fast_forward import tokenize_texts

    bert = make_cased_tiny_bert(tmp_path / "cased") if cased else tiny_bert
    tokenizer = AutoTokenizer.from_pretrained(str(bert), use_fast=True)
    rng = random.Random(int(cased))
    pieces = ["Cancer", "of", "the", "colon", "5-FU", "(", ")", "ΔF508", "β-catenin", "  ", "\n", "😀", "[PAD]", "x"]
    texts = ["", " "]
    texts += ["".join(rng.choice(pieces) + rng.choice(["", " "]) for _ in range(rng.randint(0, 30))) for _ in range(20)]
    tokenizer(["a b c", "a"], padding="max_length", max_length=7, truncation=True)  # leaves backend state behind
    for batch in (texts, texts[:1], texts[2:3]):
        encoding = huggingface_tokenize(tokenizer, batch)
        expected = WordpieceBatch.from_batch_encoding(encoding)
        found, offsets = tokenize_texts(tokenizer, batch)
        numpy.testing.assert_array_equal(found.input_ids, expected.input_ids)
        assert found.input_ids.dtype == expected.input_ids.dtype
        numpy.testing.assert_array_equal(found.attention_mask, expected.attention_mask)
        assert found.attention_mask.dtype == expected.attention_mask.dtype
        numpy.testing.assert_array_equal(found.token_type_ids, expected.token_type_ids)
        assert found.strings == expected.strings
        assert found.lengths == expected.lengths
        numpy.testing.assert_array_equal(offsets, encoding["offset_mapping"])
    strings = tokenize_texts(tokenizer, texts)[0].strings
    assert sum(len(set(s)) > 3 for s in strings) > 10, "the texts gave no wordpieces: the check would be vacuous"


def test_torch_variants_reject_bad_input(exported):
    from spacy_fastbioner.benchmark.variants import apply_torch_variant, split_variant

    assert split_variant("a/b#compile") == ("a/b", "compile")
    assert split_variant("a/b") == ("a/b", "")
    with pytest.raises(ValueError, match="unknown PyTorch variant"):
        split_variant("a/b#tensorrt")
    nlp = spacy.load(exported["int8"])
    with pytest.raises(ValueError, match="fp32 PyTorch"):
        apply_torch_variant(nlp, find_transformer(nlp), "compile")


def test_static_int8_for_the_study(exported, tiny_bert):
    """The static int8 of the int8 study (project/scripts/int8_study.py) runs
    and stays close to fp32 on its calibration data."""
    from spacy_fastbioner.runtime.architecture import example_inputs
    from spacy_fastbioner.runtime.onnx_model import quantize_onnx_static

    fp32 = find_transformer(spacy.load(exported["fp32"])).model.transformer
    tokenizer = find_transformer(spacy.load(exported["fp32"])).model.tokenizer
    batch = {k: v.numpy() for k, v in example_inputs(tokenizer, EXPORT_TEXTS[:3]).items()}
    static = OnnxTransformer(quantize_onnx_static(fp32.model_bytes, [batch]), fp32.config)
    assert static.is_int8 and not fp32.is_int8
    expected = fp32(**batch).last_hidden_state.numpy()
    found = static(**batch).last_hidden_state.numpy()
    mask = batch["attention_mask"].astype(bool)
    assert found.shape == expected.shape
    assert numpy.abs(found - expected)[mask].max() < 0.5 * numpy.abs(expected[mask]).max()


def test_paper_shape_onnx_rows(tiny_bert, tmp_path):
    from spacy_fastbioner.benchmark import build_paper_shape_pipelines

    shape = {"num_hidden_layers": 2, "hidden_size": 32, "num_attention_heads": 2, "intermediate_size": 64}
    paths = build_paper_shape_pipelines(
        tmp_path, vocab_dir=tiny_bert, student_layers=1, with_onnx=True, with_openvino=False, **shape
    )
    assert set(paths) == {"teacher", "student", "student-int8", "student-onnx", "student-onnx-int8"}
    for name in ("student-onnx", "student-onnx-int8"):
        transformer = find_transformer(spacy.load(paths[name])).model.transformer
        assert isinstance(transformer, OnnxTransformer) and transformer.config.num_hidden_layers == 1
        assert transformer.is_int8 == (name == "student-onnx-int8")


def test_static_int8_keeps_excluded_layers_in_fp32(exported):
    """The static int8 study's knob: excluded layers keep their fp32 weights,
    the others are quantised as without it; a pattern that matches nothing fails."""
    from helpers import int8_matmuls

    from spacy_fastbioner.runtime.architecture import example_inputs
    from spacy_fastbioner.runtime.onnx_model import quantize_onnx_static

    trf = find_transformer(spacy.load(exported["fp32"])).model
    fp32 = trf.transformer
    batch = {k: v.numpy() for k, v in example_inputs(trf.tokenizer, EXPORT_TEXTS[:3]).items()}

    plain = quantize_onnx_static(fp32.model_bytes, [batch], qdq=True, linear_only=True)
    ffn_out = {name for name in int8_matmuls(plain) if re.search(r"layer\.\d+/output/dense", name)}
    assert ffn_out, "no feed-forward output layer quantised: the check would be vacuous"
    kept = quantize_onnx_static(
        fp32.model_bytes, [batch], qdq=True, linear_only=True, exclude=[r"layer\.\d+/output/dense/MatMul"]
    )
    assert int8_matmuls(kept) == int8_matmuls(plain) - ffn_out
    with pytest.raises(ValueError, match="no node of the graph matches"):
        quantize_onnx_static(fp32.model_bytes, [batch], exclude=["no-such-layer"])
