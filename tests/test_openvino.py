"""The OpenVINO transformer (`spacy fastbioner export --runtime openvino`) on
tiny BERTs, uncased and cased: equivalence with PyTorch in fp32, NNCF's
static int8, serialisation, loading without pickle, threads, the CLI and
the benchmark's rows."""

import pickle
from pathlib import Path

import numpy
import pytest
import spacy
import srsly
import torch
from typer.testing import CliRunner

pytest.importorskip("openvino")
pytest.importorskip("nncf")
pytest.importorskip("onnx")

from helpers import (  # noqa: E402
    head_logits,
    make_cased_tiny_bert,
    make_examples,
    make_pipeline,
    synthetic_sentences,
    text_entities,
    train_pipeline,
    write_iob,
)

from spacy_fastbioner.cli import fastbioner_cli  # noqa: E402
from spacy_fastbioner.encoder.transformer import count_parameters, find_transformer  # noqa: E402
from spacy_fastbioner.runtime import (  # noqa: E402
    ONNX_ARCHITECTURE,
    OPENVINO_ARCHITECTURE,
    PACKED_MAX_BATCH_ITEMS,
    OpenVinoTransformer,
    export_pipeline,
)


def calibration_docs(nlp, n=24):
    return [eg.reference for eg in make_examples(nlp, synthetic_sentences(n, seed=4))]


@pytest.fixture(scope="module", params=["uncased", "cased"])
def trained(request, tiny_bert, tmp_path_factory):
    bert = tiny_bert if request.param == "uncased" else make_cased_tiny_bert(tmp_path_factory.mktemp("cased"))
    nlp = make_pipeline(bert)
    train_pipeline(nlp, make_examples(nlp, synthetic_sentences(120, seed=1)), epochs=4)
    assert any(text_entities(nlp)), "the tiny pipeline predicts no entities: the checks would be vacuous"
    return nlp


@pytest.fixture(scope="module")
def exported(trained, tmp_path_factory):
    root = tmp_path_factory.mktemp("openvino")
    export_pipeline(trained, runtime="openvino", int8=False, packed=False).to_disk(root / "fp32")
    export_pipeline(
        trained, runtime="openvino", int8=True, calibration=calibration_docs(trained), packed=False
    ).to_disk(root / "int8")
    export_pipeline(trained, runtime="openvino", int8=True, calibration=calibration_docs(trained), packed=True).to_disk(
        root / "packed-int8"
    )
    # OpenVINO packs a BERT model's batches by default.
    export_pipeline(trained, runtime="openvino", int8=False).to_disk(root / "packed")
    return {name: root / name for name in ("fp32", "int8", "packed", "packed-int8")}


def test_fp32_export_matches_pytorch(trained, exported):
    nlp = spacy.load(exported["fp32"])
    transformer = find_transformer(nlp).model.transformer
    assert nlp.config["components"]["transformer"]["model"]["@architectures"] == OPENVINO_ARCHITECTURE
    assert isinstance(transformer, OpenVinoTransformer) and not transformer.is_int8
    # The sequence axis is bounded by the position embeddings, the batch axis is not.
    for port in transformer._model.inputs:
        batch, sequence = port.get_partial_shape()
        assert batch.is_dynamic and batch.get_max_length() == -1
        assert sequence.get_max_length() == transformer.config.max_position_embeddings
    assert nlp.pipe_names == trained.pipe_names
    expected, found = head_logits(trained), head_logits(nlp)
    assert len(expected) == len(found) == 4
    for x, y in zip(expected, found):
        assert x.shape == y.shape
        numpy.testing.assert_allclose(y, x, atol=1e-3)
    assert text_entities(nlp) == text_entities(trained)
    # BERT's pooler is not part of last_hidden_state's graph.
    pytorch = find_transformer(trained).model.transformer
    pooler = sum(p.numel() for p in pytorch.pooler.parameters())
    assert count_parameters(nlp)["transformer"] == count_parameters(trained)["transformer"] - pooler


def test_int8_export_is_static_and_close(trained, exported):
    nlp = spacy.load(exported["int8"])
    transformer = find_transformer(nlp).model.transformer
    assert transformer.is_int8
    assert nlp.meta["fastbioner"]["runtime"] == "openvino"
    assert nlp.meta["fastbioner"]["quantized"] == "qint8-static"
    assert nlp.meta["fastbioner"]["smoothing"] == {"method": "nncf-transformer-preset", "calibration_docs": 24}
    assert "openvino>=2025.0" in nlp.meta["requirements"]
    assert nlp.meta["name"].endswith("_openvino_int8")
    fp32 = find_transformer(spacy.load(exported["fp32"])).model.transformer
    assert transformer.num_parameters() == fp32.num_parameters()
    assert len(transformer.weights) < len(fp32.weights)
    for found, expected in zip(head_logits(nlp), head_logits(trained)):
        assert numpy.corrcoef(found.ravel(), expected.ravel())[0, 1] > 0.99


def test_packed_exports(trained, exported):
    """Packed in fp32: PyTorch's logits and entities; packed in int8: static,
    calibrated on packed batches, close to the padded int8 export."""
    nlp = spacy.load(exported["packed"])
    transformer = find_transformer(nlp).model.transformer
    assert transformer.packed and "segment_ids" in transformer.input_names
    assert nlp.config["components"]["transformer"]["model"]["packed"] is True
    for x, y in zip(head_logits(trained), head_logits(nlp)):
        numpy.testing.assert_allclose(y, x, atol=1e-3)
    assert text_entities(nlp) == text_entities(trained)
    int8 = spacy.load(exported["packed-int8"])
    assert find_transformer(int8).model.transformer.is_int8 and find_transformer(int8).model.transformer.packed
    for x, y in zip(head_logits(spacy.load(exported["int8"])), head_logits(int8)):
        assert numpy.abs(x - y).max() < 0.5 * max(1.0, numpy.abs(x).max())


def test_int8_needs_calibration(trained):
    with pytest.raises(ValueError, match="--calibration"):
        export_pipeline(trained, runtime="openvino", int8=True)
    with pytest.raises(ValueError, match="no calibration docs"):
        export_pipeline(trained, runtime="openvino", int8=True, calibration=[])
    with pytest.raises(ValueError, match="fp32 export needs none"):
        export_pipeline(trained, runtime="openvino", int8=False, calibration=calibration_docs(trained, 4))


def test_roundtrips(exported):
    for kind in ("fp32", "int8"):
        nlp = spacy.load(exported[kind])
        expected = text_entities(nlp)
        assert any(expected)
        from_bytes = spacy.blank("en").from_config(nlp.config).from_bytes(nlp.to_bytes())
        assert text_entities(from_bytes) == expected
        trf, other = find_transformer(nlp), find_transformer(from_bytes)
        assert other.model.transformer.xml == trf.model.transformer.xml
        assert other.model.transformer.weights == trf.model.transformer.weights
        assert other.model.tokenizer.get_vocab() == trf.model.tokenizer.get_vocab()
        for x, y in zip(head_logits(nlp), head_logits(from_bytes)):
            numpy.testing.assert_array_equal(x, y)


def test_config_initialize_converts_from_a_name(tiny_bert):
    nlp = make_pipeline(tiny_bert)
    config = nlp.config.copy()
    config["components"]["transformer"]["model"]["@architectures"] = OPENVINO_ARCHITECTURE
    ov_nlp = spacy.blank("en").from_config(config)
    examples = make_examples(ov_nlp, synthetic_sentences(8, seed=2))
    ov_nlp.get_pipe("transformer").initialize(lambda: examples, nlp=ov_nlp)
    assert isinstance(find_transformer(ov_nlp).model.transformer, OpenVinoTransformer)
    with pytest.raises(ValueError, match="cannot be trained"):
        ov_nlp.update(examples)
    config["components"]["transformer"]["model"]["int8"] = True
    int8_nlp = spacy.blank("en").from_config(config)
    with pytest.raises(ValueError, match="calibration"):
        int8_nlp.get_pipe("transformer").initialize(lambda: examples, nlp=int8_nlp)


def test_loading_runs_no_pickle(exported, monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("pickle code ran while loading")

    for module, name in ((pickle, "load"), (pickle, "loads"), (pickle, "Unpickler"), (torch, "load")):
        monkeypatch.setattr(module, name, refuse)
    assert any(text_entities(spacy.load(exported["int8"])))


def _shim_bytes(path: Path):
    model_file = path / "transformer" / "model"
    msg = srsly.msgpack_loads(model_file.read_bytes())
    shims = next(node_shims for node_shims in msg["shims"] if node_shims)
    return model_file, msg, shims


def test_refuses_bad_and_other_runtimes_data(exported, tmp_path):
    path = tmp_path / "p"
    spacy.load(exported["fp32"]).to_disk(path)
    model_file, msg, shims = _shim_bytes(path)
    shim = srsly.msgpack_loads(shims[0])
    shim["xml"] = b"<net>not a graph"
    shims[0] = srsly.msgpack_dumps(shim)
    model_file.write_bytes(srsly.msgpack_dumps(msg))
    with pytest.raises(ValueError, match="not a valid OpenVINO IR model"):
        spacy.load(path)
    # OpenVINO data under the ONNX Runtime architecture: named, not misread.
    spacy.load(exported["fp32"]).to_disk(path)
    config = (path / "config.cfg").read_text(encoding="utf8")
    config = config.replace(OPENVINO_ARCHITECTURE, ONNX_ARCHITECTURE).replace("cache_capacity = null\n", "")
    (path / "config.cfg").write_text(config, encoding="utf8")
    with pytest.raises(ValueError, match="spacy_fastbioner.openvino.v1"):
        spacy.load(path)


def test_compiled_model_follows_torch_threads(exported):
    transformer = find_transformer(spacy.load(exported["fp32"])).model.transformer
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = transformer.request
        assert transformer.request is one
        assert transformer.compiled.get_property("INFERENCE_NUM_THREADS") == 1
        torch.set_num_threads(2)
        assert transformer.request is not one
        assert transformer.compiled.get_property("INFERENCE_NUM_THREADS") == 2
        assert str(transformer.compiled.get_property("INFERENCE_PRECISION_HINT")) in ("<Type: 'float32'>", "f32")
    finally:
        torch.set_num_threads(before)


def test_compile_properties(exported):
    """A study's or the architecture's properties replace the defaults; the
    CPU plugin reads the keys that it does not report back (a wrong value is
    refused by name)."""
    from spacy_fastbioner.runtime.openvino_model import compile_model, compile_properties

    assert "SNIPPETS_MODE" not in compile_properties(2)
    assert compile_properties(2)["INFERENCE_NUM_THREADS"] == 2
    assert compile_properties(1, {"SNIPPETS_MODE": "DISABLE"})["SNIPPETS_MODE"] == "DISABLE"
    transformer = find_transformer(spacy.load(exported["fp32"])).model.transformer
    assert compile_model(transformer._model, threads=1, properties={"SNIPPETS_MODE": "DISABLE"})
    for key in ("SNIPPETS_MODE", "CPU_RUNTIME_CACHE_CAPACITY"):
        with pytest.raises(RuntimeError, match=key):
            compile_model(transformer._model, threads=1, properties={key: "not-a-value"})


def test_cache_capacity_is_a_setting_of_the_architecture(exported, tmp_path):
    """`cache_capacity` bounds the CPU plugin's kernel cache: set through
    the config at load (and kept by `to_disk`), given to the compiled model,
    carried by copies and pickles; same entities as without it."""
    import copy

    from spacy_fastbioner.runtime.openvino_model import cache_capacity_properties

    overrides = {"components": {"transformer": {"model": {"cache_capacity": 20}}}}
    nlp = spacy.load(exported["int8"], config=overrides)
    transformer = find_transformer(nlp).model.transformer
    assert transformer.properties == {"CPU_RUNTIME_CACHE_CAPACITY": 20}
    assert transformer.request is not None  # compiled with it
    assert text_entities(nlp) == text_entities(spacy.load(exported["int8"]))
    assert copy.deepcopy(transformer).properties == transformer.properties
    assert pickle.loads(pickle.dumps(transformer)).properties == transformer.properties
    nlp.to_disk(tmp_path / "capped")
    assert find_transformer(spacy.load(tmp_path / "capped")).model.transformer.properties == transformer.properties
    assert find_transformer(spacy.load(exported["int8"])).model.transformer.properties == {}
    assert cache_capacity_properties(None) == {}
    with pytest.raises(ValueError, match="cache_capacity must be 0 or more"):
        cache_capacity_properties(-1)


def test_runtime_properties_are_for_openvino_only():
    from spacy_transformers.data_classes import HFObjects

    from spacy_fastbioner.runtime.architecture import RuntimeShim

    with pytest.raises(ValueError, match="OpenVINO only"):
        RuntimeShim(HFObjects(None, None, None, {}, {}), "onnx", {"CPU_RUNTIME_CACHE_CAPACITY": 10})


def test_export_cli(trained, tmp_path):
    trained.to_disk(tmp_path / "fp32")
    data = write_iob(tmp_path / "train.tsv", synthetic_sentences(30, seed=5))
    base = ["export", str(tmp_path / "fp32")]
    result = CliRunner().invoke(fastbioner_cli, base + [str(tmp_path / "x"), "--runtime", "openvino"])
    assert result.exit_code == 1 and "--calibration" in result.output
    args = [str(tmp_path / "out"), "--runtime", "openvino", "--calibration", str(data), "--n-calibration", "8"]
    result = CliRunner().invoke(fastbioner_cli, base + args + ["--max-batch-items", "256"])
    assert result.exit_code == 0, result.output
    assert "openvino int8, calibrated on 8 docs" in " ".join(result.output.split())
    nlp = spacy.load(tmp_path / "out")
    assert find_transformer(nlp).model.transformer.is_int8
    assert nlp.get_pipe("transformer").cfg["max_batch_items"] == 256
    args = [str(tmp_path / "out32"), "--runtime", "openvino", "--fp32", "--padded", "--verify", str(data)]
    result = CliRunner().invoke(fastbioner_cli, base + args)
    assert result.exit_code == 0, result.output
    assert "0 of 30 docs with other entities" in " ".join(result.output.split())
    assert not find_transformer(spacy.load(tmp_path / "out32")).model.transformer.packed
    args = [str(tmp_path / "packed"), "--runtime", "openvino", "--fp32", "--verify", str(data)]
    result = CliRunner().invoke(fastbioner_cli, base + args)
    assert result.exit_code == 0, result.output
    assert "openvino fp32, packed" in " ".join(result.output.split())
    assert "0 of 30 docs with other entities" in " ".join(result.output.split())
    assert find_transformer(spacy.load(tmp_path / "packed")).model.transformer.packed
    # Without --max-batch-items, a packed export takes larger sub-batches; a padded one keeps the source's.
    assert spacy.load(tmp_path / "packed").get_pipe("transformer").cfg["max_batch_items"] == PACKED_MAX_BATCH_ITEMS
    source_items = trained.get_pipe("transformer").cfg["max_batch_items"]
    assert source_items != PACKED_MAX_BATCH_ITEMS
    assert spacy.load(tmp_path / "out32").get_pipe("transformer").cfg["max_batch_items"] == source_items


def test_benchmark_rows(trained, exported, tmp_path):
    from spacy_fastbioner.benchmark import BenchmarkSettings, benchmark_threads, markdown_table

    data = write_iob(tmp_path / "test.tsv", synthetic_sentences(24, seed=11))
    trained.to_disk(tmp_path / "pytorch")
    models = [
        ("pytorch", str(tmp_path / "pytorch")),
        ("openvino", str(exported["fp32"])),
        ("openvino-int8", str(exported["int8"])),
        ("packed", str(exported["packed"])),
    ]
    settings = BenchmarkSettings(
        batch_size=8, n_batches=2, warmup=1, n_latency=2, memory=False, max_batch_items=96, packed_batch_items=384
    )
    results = benchmark_threads(models, data, settings, [1, 2], log=lambda _: None)
    rows = {m["name"]: m for m in results["models"]}
    assert set(rows) == {f"{name} ({n}t)" for name, _ in models for n in (1, 2)}
    # Sub-batches: the packed transformer takes packed_batch_items, the padded ones max_batch_items.
    assert {name: row["transformer"]["max_batch_items"] for name, row in rows.items() if "1t" in name} == {
        "pytorch (1t)": 96,
        "openvino (1t)": 96,
        "openvino-int8 (1t)": 96,
        "packed (1t)": 384,
    }
    for name, row in rows.items():
        assert row["transformer"]["runtime"] == ("pytorch" if name.startswith("pytorch") else "openvino")
        assert row["speed"]["raw_forward_words_per_sec"]["median"] > 0
    assert (
        rows["openvino-int8 (1t)"]["transformer"]["quantized"] and not rows["openvino (1t)"]["transformer"]["quantized"]
    )
    assert rows["openvino (1t)"]["accuracy"]["f"] == pytest.approx(rows["pytorch (1t)"]["accuracy"]["f"])
    assert rows["packed (1t)"]["accuracy"]["f"] == pytest.approx(rows["pytorch (1t)"]["accuracy"]["f"])
    # The packed row counts the positions of its packed rows (widths in steps of 16), fewer than padded.
    packed, padded = rows["packed (1t)"]["speed"]["wordpieces"], rows["openvino (1t)"]["speed"]["wordpieces"]
    assert packed["real"] == padded["real"] and packed["padded"] % 16 == 0
    assert packed["padded"] < padded["padded"], (packed, padded)
    assert rows["packed (1t)"]["transformer"]["packed"] and not rows["openvino (1t)"]["transformer"]["packed"]
    assert results["environment"]["openvino"]
    table = markdown_table(results)
    assert "| openvino-int8 (2t) | OpenVINO | 2 |" in table and "OpenVINO 20" in table
    assert "| packed (1t) | OpenVINO, packed | 1 |" in table
    assert "Sub-batches (max_batch_items): 96 for pytorch (1t), openvino (1t)," in table
    assert "; 384 for packed (1t), packed (2t)." in table


def test_paper_shape_openvino_rows(tiny_bert, tmp_path):
    from spacy_fastbioner.benchmark import build_paper_shape_pipelines
    from spacy_fastbioner.benchmark.paper_shape import pipeline_names

    shape = {"num_hidden_layers": 2, "hidden_size": 32, "num_attention_heads": 2, "intermediate_size": 64}
    paths = build_paper_shape_pipelines(
        tmp_path, vocab_dir=tiny_bert, student_layers=1, with_onnx=False, with_openvino=True, **shape
    )
    ov_names = ("student-openvino", "student-openvino-int8", "student-openvino-int8-packed")
    assert set(paths) == {"teacher", "student", "student-int8", *ov_names}
    assert set(pipeline_names(with_onnx=False, with_openvino=True)) == set(paths)
    for name in ov_names:
        transformer = find_transformer(spacy.load(paths[name])).model.transformer
        assert isinstance(transformer, OpenVinoTransformer) and transformer.config.num_hidden_layers == 1
        assert transformer.is_int8 == (name != "student-openvino")
        assert transformer.packed == name.endswith("packed")
