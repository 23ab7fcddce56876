"""Thread limits where `nlp.pipe(n_process=N)` workers start, not when a
pipeline is made; the int8 pipeline under fork and spawn."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from spacy_fastbioner.runtime.quantize import quantize_pipeline

HOOKS_SCRIPT = """
import os, sys
hooks = []
real = os.register_at_fork
def register_at_fork(**kwargs):
    hooks.extend(str(getattr(hook, "__module__", "")) for hook in kwargs.values())
    real(**kwargs)
os.register_at_fork = register_at_fork
import spacy
nlp = spacy.load(sys.argv[1])
nlp("breast cancer in mice")
made = [m for m in hooks if m.startswith("spacy_fastbioner")]
from spacy_fastbioner import limit_torch_threads_in_children
limit_torch_threads_in_children()
limit_torch_threads_in_children(2)
print(made, [m for m in hooks if m.startswith("spacy_fastbioner")])
"""

N_PROCESS_SCRIPT = """
import json, multiprocessing, sys
import spacy, torch
from spacy.language import Language
from spacy_fastbioner import limit_torch_threads_in_children

@Language.component("thread_probe")
def thread_probe(doc):
    doc.user_data["torch_threads"] = torch.get_num_threads()
    return doc

def ents(doc):
    return [[e.start_char, e.end_char, e.label_] for e in doc.ents]

def main(model, method):
    multiprocessing.set_start_method(method, force=True)
    torch.set_num_threads(2)
    limit_torch_threads_in_children()
    nlp = spacy.load(model)
    nlp.add_pipe("thread_probe")
    texts = json.loads(sys.argv[3])
    single = [ents(doc) for doc in nlp.pipe(texts)]  # the parent runs torch first
    docs = list(nlp.pipe(texts, n_process=2, batch_size=2))
    threads = sorted({doc.user_data["torch_threads"] for doc in docs})
    print(json.dumps({"single": single, "multi": [ents(doc) for doc in docs], "threads": threads}))

if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
"""

TEXTS = [
    "the patients with breast cancer were treated with aspirin",
    "mice showed no signs of diabetes after lithium carbonate",
    "naloxone and clonidine in mice with hereditary colitis",
    "",
    "we report that the study showed high tumour levels",
]


@pytest.fixture(scope="module")
def int8_dir(trained_teacher, tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("threads") / "int8"
    quantize_pipeline(trained_teacher).to_disk(path)
    return path


@pytest.fixture(scope="module")
def onnx_int8_dir(trained_teacher, tmp_path_factory) -> Path:
    pytest.importorskip("onnxruntime")
    from spacy_fastbioner.runtime import export_pipeline

    path = tmp_path_factory.mktemp("threads") / "onnx-int8"
    export_pipeline(trained_teacher, int8=True).to_disk(path)
    return path


@pytest.fixture(scope="module")
def openvino_int8_dir(trained_teacher, tmp_path_factory) -> Path:
    pytest.importorskip("openvino")
    pytest.importorskip("nncf")
    from helpers import make_examples, synthetic_sentences

    from spacy_fastbioner.runtime import export_pipeline

    calibration = [eg.reference for eg in make_examples(trained_teacher, synthetic_sentences(16, seed=4))]
    path = tmp_path_factory.mktemp("threads") / "openvino-int8"
    export_pipeline(trained_teacher, runtime="openvino", int8=True, calibration=calibration).to_disk(path)
    return path


def _env():
    env = {k: v for k, v in os.environ.items() if k != "OMP_NUM_THREADS"}
    # The tokenizers library's Rust pool on in the parent, as `set_threads(2)` leaves it: a forked
    # worker that used that pool, whose threads stayed in the parent, waited forever.
    env.update(HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", TOKENIZERS_PARALLELISM="true")
    return env


def test_making_a_pipeline_registers_no_fork_hook(int8_dir):
    result = subprocess.run(
        [sys.executable, "-c", HOOKS_SCRIPT, str(int8_dir)], capture_output=True, text=True, env=_env(), timeout=600
    )
    assert result.returncode == 0, result.stderr[-3000:]
    made, limited = result.stdout.strip().splitlines()[-1].split("] [")
    assert made == "[", f"loading and running a pipeline registered fork hooks: {made}]"
    assert limited == "'spacy_fastbioner.util.threads']"  # once, however often it is called


@pytest.mark.parametrize("runtime", ["pytorch", "onnx", "openvino"])
@pytest.mark.parametrize("method", ["fork", "spawn"])
def test_n_process_with_an_int8_pipeline(request, tmp_path, method, runtime):
    """The parent runs the pipeline at 2 threads first: an inference runtime's
    workers must not wait for the parent's thread pool (README: Fast inference)."""
    fixture = {"pytorch": "int8_dir", "onnx": "onnx_int8_dir", "openvino": "openvino_int8_dir"}[runtime]
    model = request.getfixturevalue(fixture)
    script = tmp_path / "n_process.py"
    script.write_text(N_PROCESS_SCRIPT, encoding="utf8")
    try:
        result = subprocess.run(
            [sys.executable, str(script), str(model), method, json.dumps(TEXTS)],
            capture_output=True,
            text=True,
            env=_env(),
            timeout=120,
        )
    except subprocess.TimeoutExpired:
        pytest.fail(
            f"nlp.pipe(n_process=2) with {method} and {runtime} hung: forked workers that inherit the "
            "parent's threads wait forever for its thread pool"
        )
    assert result.returncode == 0, result.stderr[-3000:]
    out = json.loads(result.stdout.strip().splitlines()[-1])
    assert any(out["single"]), "the tiny pipeline finds no entities: the comparison would be vacuous"
    assert out["multi"] == out["single"]
    if method == "fork":
        # The parent ran torch with 2 threads; each forked worker has 1.
        assert out["threads"] == [1]


def test_one_thread_means_one_core_for_the_tokenizer(monkeypatch) -> None:
    """At one thread the tokenizers library's Rust pool is off (its parallel
    `encode_batch` would use a second core); the benchmark sets both, and an
    annotation run with one thread keeps a user's own setting."""
    from spacy_fastbioner.util.threads import limit_threads, set_threads

    monkeypatch.setenv("TOKENIZERS_PARALLELISM", "unset by the test")  # restored afterwards
    before = torch.get_num_threads()
    try:
        set_threads(1)
        assert torch.get_num_threads() == 1 and os.environ["TOKENIZERS_PARALLELISM"] == "false"
        set_threads(2)
        assert torch.get_num_threads() == 2 and os.environ["TOKENIZERS_PARALLELISM"] == "true"
        with pytest.raises(ValueError, match="at least 1"):
            set_threads(0)
        monkeypatch.delenv("TOKENIZERS_PARALLELISM")
        limit_threads(n_process=1, n_threads=2)
        assert "TOKENIZERS_PARALLELISM" not in os.environ
        limit_threads(n_process=1, n_threads=1)
        assert os.environ["TOKENIZERS_PARALLELISM"] == "false"
        monkeypatch.setenv("TOKENIZERS_PARALLELISM", "true")
        limit_threads(n_process=1, n_threads=1)
        assert os.environ["TOKENIZERS_PARALLELISM"] == "true"
    finally:
        torch.set_num_threads(before)
