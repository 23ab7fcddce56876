"""The benchmark, int8 quantisation and the paper-shape builder, on tiny
offline models. No timing is asserted: only that the figures are there."""

import itertools
import json
from pathlib import Path
from typing import List, Tuple

import pytest
import spacy
import torch
from helpers import make_examples, record_encoder_inputs, synthetic_sentences, write_iob
from spacy.tokens import Doc
from spacy.util import load_config
from typer.testing import CliRunner

from spacy_fastbioner.benchmark import (
    BenchmarkSettings,
    benchmark_pipelines,
    build_paper_shape_pipelines,
    parse_model_arg,
    runner,
    write_report,
)
from spacy_fastbioner.benchmark.data import load_gold_docs
from spacy_fastbioner.benchmark.memory import measure_memory
from spacy_fastbioner.benchmark.speed import make_batches, summarize, time_pipeline
from spacy_fastbioner.cli import fastbioner_cli
from spacy_fastbioner.encoder.inputs import fresh_docs, raw_batches
from spacy_fastbioner.encoder.transformer import count_parameters, find_transformer
from spacy_fastbioner.runtime.quantize import QUANTIZED_ARCHITECTURE, is_quantized, quantize_pipeline

REPO = Path(__file__).parent.parent
TINY_SHAPE = {
    "num_hidden_layers": 2,
    "hidden_size": 32,
    "num_attention_heads": 2,
    "intermediate_size": 64,
    "max_position_embeddings": 256,  # the paper-shape window (128) and its special tokens
}


@pytest.fixture(scope="module")
def pipelines(trained_teacher, tmp_path_factory):
    """The tiny trained pipeline and its int8 form, saved."""
    root = tmp_path_factory.mktemp("bench_pipelines")
    trained_teacher.to_disk(root / "fp32")
    quantize_pipeline(trained_teacher).to_disk(root / "int8")
    return {"fp32": root / "fp32", "int8": root / "int8"}


@pytest.fixture(scope="module")
def test_tsv(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("bench_data") / "test.tsv"
    return write_iob(path, synthetic_sentences(40, seed=11))


def _entities(nlp, sentences):
    return [[(e.start, e.end, e.label_) for e in nlp(Doc(nlp.vocab, words=words)).ents] for words, _ in sentences]


def test_int8_pipeline_loads_quantized(pipelines):
    nlp = spacy.load(pipelines["int8"])
    assert nlp.config["components"]["transformer"]["model"]["@architectures"] == QUANTIZED_ARCHITECTURE
    hf = find_transformer(nlp).model.transformer
    assert is_quantized(hf)
    linears = [m for m in hf.modules() if isinstance(m, torch.ao.nn.quantized.dynamic.Linear)]
    assert linears and not any(type(m) is torch.nn.Linear for m in hf.modules())
    assert linears[0].weight().dtype == torch.qint8
    assert linears[0].weight().qscheme() == torch.per_channel_affine
    assert nlp.meta["fastbioner"]["quantized"] == "qint8"
    calls = []
    for linear in linears:
        linear.register_forward_hook(lambda module, args, output: calls.append(module))
    nlp(Doc(nlp.vocab, words=["breast", "cancer", "in", "mice"]))
    assert len(calls) == len(linears)  # every int8 layer ran, the pooler's included


def test_int8_predicts_like_fp32(pipelines):
    fp32, int8 = spacy.load(pipelines["fp32"]), spacy.load(pipelines["int8"])
    sentences = synthetic_sentences(60, seed=5)
    same = sum(a == b for a, b in zip(_entities(fp32, sentences), _entities(int8, sentences)))
    assert same >= 0.9 * len(sentences)
    # int8 Linear layers keep their weights packed, not as torch parameters.
    assert count_parameters(int8) == count_parameters(fp32)
    assert count_parameters(fp32)["transformer"] == sum(
        p.numel() for p in find_transformer(fp32).model.transformer.parameters()
    )


def test_int8_weights_are_smaller_on_disk(pipelines):
    sizes = {k: (p / "transformer" / "model").stat().st_size for k, p in pipelines.items()}
    assert sizes["int8"] < sizes["fp32"]


def test_int8_serialization_roundtrip(pipelines):
    nlp = spacy.load(pipelines["int8"])
    # A pipeline of the same config whose weights are not the int8 ones, so
    # that only `from_bytes` can make its entities equal the saved pipeline's.
    nlp2 = spacy.util.load_model_from_config(nlp.config, auto_fill=False)
    nlp2.initialize(lambda: make_examples(nlp2, synthetic_sentences(4, seed=1)))
    sentences = synthetic_sentences(10, seed=6)
    assert _entities(nlp2, sentences) != _entities(nlp, sentences)
    nlp2.from_bytes(nlp.to_bytes())
    assert is_quantized(find_transformer(nlp2).model.transformer)
    assert _entities(nlp, sentences) == _entities(nlp2, sentences)


def test_int8_cannot_be_trained_or_quantized_twice(pipelines):
    nlp = spacy.load(pipelines["int8"])
    with pytest.raises(ValueError, match="cannot be trained"):
        nlp.update(make_examples(nlp, synthetic_sentences(2, seed=1)))
    with pytest.raises(ValueError, match="quantised already"):
        quantize_pipeline(nlp)


def test_quantize_cli(pipelines, tmp_path):
    args = ["quantize", str(pipelines["fp32"]), str(tmp_path / "q"), "--max-batch-items", "256"]
    result = CliRunner().invoke(fastbioner_cli, args)
    assert result.exit_code == 0, result.output
    nlp = spacy.load(tmp_path / "q")
    assert is_quantized(find_transformer(nlp).model.transformer)
    assert nlp.get_pipe("transformer").cfg["max_batch_items"] == 256
    assert nlp.config["components"]["transformer"]["max_batch_items"] == 256


def test_benchmark_writes_reports(pipelines, test_tsv, tmp_path):
    settings = BenchmarkSettings(batch_size=8, n_batches=2, warmup=1, n_latency=3, memory=False, threads=1)
    logged = []
    results = benchmark_pipelines(
        [("fp32", str(pipelines["fp32"])), ("int8", str(pipelines["int8"]))],
        test_tsv,
        settings,
        log=logged.append,
    )
    assert logged
    assert results["settings"]["reference"] == "fp32"
    assert results["data"]["docs"] == 40
    assert [m["name"] for m in results["models"]] == ["fp32", "int8"]
    for model in results["models"]:
        speed = model["speed"]
        assert speed["words_per_sec"]["n"] == 2 and speed["words_per_sec"]["median"] > 0
        assert len(speed["words_per_sec"]["ci95"]) == 2
        assert speed["raw_forward_words_per_sec"]["median"] > 0
        assert speed["pipeline_vs_raw"]["median"] > 0
        assert speed["repeat"]["words_per_sec"]["n"] == 2 and speed["repeat"]["pipeline_vs_raw"]["median"] > 0
        assert 0.0 <= speed["wordpieces"]["padding"] < 1.0
        assert speed["ms_per_doc"]["n"] == 3 and speed["ms_per_doc"]["p95"] >= speed["ms_per_doc"]["p50"]
        assert speed["full_pass_words_per_sec"] > 0
        assert set(model["accuracy"]) >= {"p", "r", "f", "per_type", "f_vs_reference"}
        assert model["parameters"]["transformer"] > 0
        assert model["size_mb"] > 0
        assert model["transformer"]["layers"] == 4
    assert results["models"][1]["transformer"]["quantized"]
    assert set(results["models"][0]["accuracy"]["per_type"]) <= {"Disease", "Chemical"}
    files = write_report(results, tmp_path / "report")
    assert json.loads(files["json"].read_text())["models"][1]["name"] == "int8"
    table = files["markdown"].read_text()
    assert "| fp32 |" in table and "| int8 |" in table and "words/s, shapes seen" in table
    assert results["models"][0]["speed"]["repeat"]["speedup_vs_reference"]["median"] == 1.0
    assert files["plot"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_benchmark_repeat_times_the_same_batches(pipelines, test_tsv, monkeypatch):
    """The second pass annotates the timed batches again, in their order,
    for every model; the warm-up batches are not repeated."""
    timed: List[Tuple[int, Tuple[str, ...]]] = []

    def record(nlp, docs, batch_size=None):
        timed.append((id(nlp), tuple(doc.text for doc in docs)))
        return 1.0 + len(timed) % 3

    monkeypatch.setattr(runner, "time_pipeline", record)
    settings = BenchmarkSettings(batch_size=4, n_batches=3, warmup=2, n_latency=0, accuracy=False, memory=False)
    results = benchmark_pipelines(
        [("a", str(pipelines["fp32"])), ("b", str(pipelines["int8"]))], test_tsv, settings, log=lambda _: None
    )
    first, second = timed[: 2 * 5], timed[2 * 5 :]
    assert len(second) == 2 * 3
    assert len({model for model, _ in timed}) == 2
    for model in {model for model, _ in timed}:
        batches = [docs for m, docs in first if m == model]
        assert [docs for m, docs in second if m == model] == batches[2:]
    assert len(set(docs for _, docs in first)) == 5
    assert results["models"][0]["speed"]["repeat"]["words_per_sec"]["n"] == 3


def test_benchmark_cli(pipelines, test_tsv, tmp_path):
    args = [
        "benchmark",
        f"a={pipelines['fp32']}",
        f"b={pipelines['int8']}",
        "--data",
        str(test_tsv),
        "--output",
        str(tmp_path / "out"),
        "--batch-size",
        "8",
        "--n-batches",
        "1",
        "--warmup",
        "0",
        "--n-latency",
        "0",
        "--no-memory",
        "--no-accuracy",
        "--no-repeat",
        "--max-batch-items",
        "64",
        "--reference",
        "b",
    ]
    result = CliRunner().invoke(fastbioner_cli, args)
    assert result.exit_code == 0, result.output
    results = json.loads((tmp_path / "out" / "benchmark.json").read_text())
    assert results["settings"]["reference"] == "b"
    assert results["models"][0]["accuracy"] is None
    assert results["models"][0]["speed"]["repeat"] is None and not results["settings"]["repeat"]
    assert results["models"][0]["transformer"]["max_batch_items"] == 64
    assert (tmp_path / "out" / "benchmark.png").exists()


def test_benchmark_rejects_bad_input(pipelines, test_tsv, tmp_path):
    with pytest.raises(ValueError, match="unique"):
        benchmark_pipelines([("a", str(pipelines["fp32"]))] * 2, test_tsv)
    with pytest.raises(ValueError, match="reference"):
        benchmark_pipelines([("a", str(pipelines["fp32"]))], test_tsv, BenchmarkSettings(reference="x"))
    with pytest.raises(ValueError, match="not found"):
        benchmark_pipelines([("a", str(pipelines["fp32"]))], tmp_path / "missing.spacy")


def test_measure_memory(pipelines, test_tsv):
    memory = measure_memory(str(pipelines["int8"]), test_tsv, n_docs=8, batch_size=4, threads=1)
    assert "error" not in memory, memory.get("error")
    assert memory["n_docs"] == 8
    assert memory["peak_mb"] >= memory["rss_after_imports_mb"] > 0


def test_paper_shape_pipelines(tiny_bert, tmp_path):
    paths = build_paper_shape_pipelines(
        tmp_path, vocab_dir=tiny_bert, student_layers=1, with_onnx=False, with_openvino=False, **TINY_SHAPE
    )
    assert set(paths) == {"teacher", "student", "student-int8"}
    layers = {}
    for name, path in paths.items():
        nlp = spacy.load(path)
        hf = find_transformer(nlp).model.transformer
        layers[name] = hf.config.num_hidden_layers
        assert nlp.get_pipe("fastbioner_ner").labels == ("Disease",)
        assert is_quantized(hf) == (name == "student-int8")
        nlp(Doc(nlp.vocab, words=["breast", "cancer", "in", "mice"]))
    assert layers == {"teacher": 2, "student": 1, "student-int8": 1}
    counts = json.loads((tmp_path / "parameters.json").read_text())
    assert 0 < counts["reduction"] < 1


def test_parse_model_arg(tmp_path):
    assert parse_model_arg("student=some/path") == ("student", "some/path")
    assert parse_model_arg("training/NCBI-disease/teacher/model-best") == (
        "teacher",
        "training/NCBI-disease/teacher/model-best",
    )
    assert parse_model_arg("en_core_web_sm") == ("en_core_web_sm", "en_core_web_sm")


def test_make_batches_and_summaries():
    batches = make_batches(10, 4, 5, seed=1)
    assert batches == make_batches(10, 4, 5, seed=1)
    assert [len(b) for b in batches] == [4] * 5
    assert len(set(itertools.chain(*batches[:2]))) == 8  # no doc twice before all are used
    summary = summarize([1.0, 2.0, 3.0, 100.0])
    assert summary["median"] == 2.5
    assert summary["ci95"][0] <= summary["median"] <= summary["ci95"][1]
    with pytest.raises(ValueError):
        make_batches(0, 4, 1)


@pytest.mark.parametrize("model", ["fp32", "int8"])
def test_raw_forward_is_fed_the_pipelines_wordpieces(pipelines, test_tsv, model):
    """The raw forward pass that the pipeline is compared with gets the
    wordpiece batches that the pipeline's transformer feeds its model."""
    nlp = spacy.load(pipelines[model])
    trf = find_transformer(nlp)
    trf.cfg["max_batch_items"] = 96  # several length-sorted sub-batches
    docs = fresh_docs(nlp, load_gold_docs(test_tsv, nlp.vocab)[:24])
    fed = record_encoder_inputs(trf, lambda: time_pipeline(nlp, docs))
    raw = raw_batches(trf, docs)
    assert len(raw) == len(fed) > 1
    for ours, pipeline in zip(raw, fed):
        assert torch.equal(ours["input_ids"], pipeline["input_ids"])
        assert torch.equal(ours["attention_mask"], pipeline["attention_mask"])


def test_baseline_cnn_config():
    config = load_config(REPO / "project" / "configs" / "baseline_cnn.cfg")
    assert config["nlp"]["pipeline"] == ["tok2vec", "ner"]
    assert config["nlp"]["tokenizer"]["@tokenizers"] == "spacy_fastbioner.BioTokenizer.v1"
    assert config["corpora"]["train"]["gold_preproc"] and config["corpora"]["dev"]["gold_preproc"]
    assert not config["components"]["tok2vec"]["model"]["embed"]["include_static_vectors"]
    nlp = spacy.util.load_model_from_config(config, auto_fill=True)
    examples = make_examples(nlp, synthetic_sentences(8, seed=2))
    nlp.initialize(lambda: examples)
    losses = nlp.update(examples)
    assert losses["ner"] > 0
    doc = nlp("Breast cancer in mice.")
    assert [t.text for t in doc] == ["Breast", "cancer", "in", "mice", "."] and all(t.ent_iob_ for t in doc)


def test_shape_passes_time_first_later_and_repeated_batches():
    """time_shape_passes runs the first batches once and the later ones
    twice, in order, and counts their distinct shapes."""
    import numpy

    from spacy_fastbioner.benchmark.shapes import time_shape_passes

    def batch(*shapes):
        return [{"input_ids": numpy.zeros(shape, dtype="int64")} for shape in shapes]

    first = [batch((2, 5), (3, 7)), batch((2, 5))]
    later = [batch((4, 9)), batch((3, 7), (1, 4))]
    calls = []
    result = time_shape_passes(lambda kwargs: calls.append(kwargs["input_ids"].shape), first, later, [100, 50])
    assert calls == [(2, 5), (3, 7), (2, 5), (4, 9), (3, 7), (1, 4), (4, 9), (3, 7), (1, 4)]
    assert result["shapes"] == {"first": 2, "later": 3, "both": 4}
    assert set(result["words_per_sec"]) == {"first", "later", "repeated"}
    assert all(value > 0 for value in result["words_per_sec"].values())
