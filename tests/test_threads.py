"""Thread limits where `nlp.pipe(n_process=N)` workers start, not when a
pipeline is made; the int8 pipeline under fork and spawn.

One child process per start method runs every runtime's int8 pipeline (each
start of Python with torch and spaCy costs seconds): the tests below read
their figures from those two runs."""

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Callable, Dict

import pytest
import torch

from spacy_fastbioner.runtime.quantize import quantize_pipeline

# Loads and runs every pipeline in the parent at 2 threads (recording the fork
# hooks that this registers: none may be the plugin's), then sets the limit
# for children (twice: one hook), then runs each pipeline with n_process=2.
N_PROCESS_SCRIPT = """
import faulthandler, json, multiprocessing, os, sys
hooks = []
real = os.register_at_fork
def register_at_fork(**kwargs):
    hooks.extend(str(getattr(hook, "__module__", "")) for hook in kwargs.values())
    real(**kwargs)
os.register_at_fork = register_at_fork
import spacy, torch
from spacy.language import Language
from spacy_fastbioner import limit_torch_threads_in_children

@Language.component("thread_probe")
def thread_probe(doc):
    doc.user_data["torch_threads"] = torch.get_num_threads()
    return doc

def ents(doc):
    return [[e.start_char, e.end_char, e.label_] for e in doc.ents]

def ours():
    return [m for m in hooks if m.startswith("spacy_fastbioner")]

def main(method, models, texts, timeout):
    multiprocessing.set_start_method(method, force=True)
    torch.set_num_threads(2)
    out = {}
    pipelines = {}
    for runtime, model in models.items():
        nlp = spacy.load(model)
        nlp.add_pipe("thread_probe")
        pipelines[runtime] = nlp
        out[runtime] = {"single": [ents(doc) for doc in nlp.pipe(texts)]}  # the parent runs torch first
    made = ours()
    limit_torch_threads_in_children(2)
    limit_torch_threads_in_children()  # the children's number is the last call's: 1
    out["hooks"] = {"made": made, "limited": ours()}
    for runtime, nlp in pipelines.items():
        print("n_process=2 with", runtime, file=sys.stderr, flush=True)
        faulthandler.dump_traceback_later(timeout, exit=True)  # a hang ends the run, and says so
        docs = list(nlp.pipe(texts, n_process=2, batch_size=2))
        faulthandler.cancel_dump_traceback_later()
        out[runtime]["multi"] = [ents(doc) for doc in docs]
        out[runtime]["threads"] = sorted({doc.user_data["torch_threads"] for doc in docs})
    print(json.dumps(out))

if __name__ == "__main__":
    main(sys.argv[1], json.loads(sys.argv[2]), json.loads(sys.argv[3]), int(sys.argv[4]))
"""

TEXTS = [
    "the patients with breast cancer were treated with aspirin",
    "mice showed no signs of diabetes after lithium carbonate",
    "naloxone and clonidine in mice with hereditary colitis",
    "",
    "we report that the study showed high tumour levels",
]
# Seconds that one runtime's nlp.pipe(n_process=2) may take before it counts as hung.
HANG_SECONDS = 120


@pytest.fixture(scope="module")
def int8_models(trained_teacher, tmp_path_factory) -> Dict[str, Path]:
    """The int8 form of the tiny teacher for PyTorch and for each inference
    runtime installed here, saved, by runtime."""
    from helpers import make_examples, synthetic_sentences

    from spacy_fastbioner.runtime import export_pipeline

    root = tmp_path_factory.mktemp("threads")
    quantize_pipeline(trained_teacher).to_disk(root / "int8")
    models = {"pytorch": root / "int8"}
    if importlib.util.find_spec("onnxruntime"):
        export_pipeline(trained_teacher, int8=True).to_disk(root / "onnx-int8")
        models["onnx"] = root / "onnx-int8"
    if importlib.util.find_spec("openvino") and importlib.util.find_spec("nncf"):
        calibration = [eg.reference for eg in make_examples(trained_teacher, synthetic_sentences(16, seed=4))]
        export_pipeline(trained_teacher, runtime="openvino", int8=True, calibration=calibration).to_disk(
            root / "openvino-int8"
        )
        models["openvino"] = root / "openvino-int8"
    return models


def _env():
    env = {k: v for k, v in os.environ.items() if k != "OMP_NUM_THREADS"}
    # The tokenizers library's Rust pool on in the parent, as `set_threads(2)` leaves it: a forked
    # worker that used that pool, whose threads stayed in the parent, waited forever.
    env.update(HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", TOKENIZERS_PARALLELISM="true")
    return env


@pytest.fixture(scope="module")
def n_process_run(int8_models, tmp_path_factory) -> Callable[[str], dict]:
    """The output of N_PROCESS_SCRIPT under a start method, run once per method."""
    runs: Dict[str, dict] = {}

    def run(method: str) -> dict:
        if method not in runs:
            script = tmp_path_factory.mktemp(method) / "n_process.py"
            script.write_text(N_PROCESS_SCRIPT, encoding="utf8")
            models = json.dumps({runtime: str(path) for runtime, path in int8_models.items()})
            args = [sys.executable, str(script), method, models, json.dumps(TEXTS), str(HANG_SECONDS)]
            timeout = 60 + HANG_SECONDS * (1 + len(int8_models))
            try:
                result = subprocess.run(args, capture_output=True, text=True, env=_env(), timeout=timeout)
                runs[method] = {"returncode": result.returncode, "stdout": result.stdout, "stderr": result.stderr}
            except subprocess.TimeoutExpired as err:
                stderr = err.stderr.decode() if isinstance(err.stderr, bytes) else err.stderr or ""
                runs[method] = {"returncode": None, "stdout": "", "stderr": stderr + "\nTimeout (the whole run)"}
        return runs[method]

    return run


def _output(run: dict, method: str, runtime: str) -> dict:
    """The script's figures, or the test's failure: a hang names the runtime that hung."""
    stderr = run["stderr"]
    if run["returncode"] != 0 and "Timeout" in stderr:
        started = [line.split()[-1] for line in stderr.splitlines() if line.startswith("n_process=2 with ")]
        hung = started[-1] if started else "loading"
        if hung == runtime:
            pytest.fail(
                f"nlp.pipe(n_process=2) with {method} and {runtime} hung: forked workers that inherit the "
                "parent's threads wait forever for its thread pool"
            )
        pytest.fail(f"the {method} run hung at {hung}, before {runtime}'s figures: {stderr[-3000:]}")
    assert run["returncode"] == 0, stderr[-3000:]
    return json.loads(run["stdout"].strip().splitlines()[-1])


def test_making_a_pipeline_registers_no_fork_hook(n_process_run):
    """Loading and running the int8 pipelines (of every runtime) registers no
    fork hook; the children's limit registers one, however often it is set."""
    hooks = _output(n_process_run("fork"), "fork", "pytorch")["hooks"]
    assert hooks["made"] == [], f"loading and running a pipeline registered fork hooks: {hooks['made']}"
    assert hooks["limited"] == ["spacy_fastbioner.util.threads"]  # once, however often it is called


@pytest.mark.parametrize("runtime", ["pytorch", "onnx", "openvino"])
@pytest.mark.parametrize("method", ["fork", "spawn"])
def test_n_process_with_an_int8_pipeline(n_process_run, int8_models, method, runtime):
    """The parent runs the pipeline at 2 threads first: an inference runtime's
    workers must not wait for the parent's thread pool (README: Fast inference)."""
    if runtime not in int8_models:
        pytest.skip(f"the {runtime} runtime is not installed")
    out = _output(n_process_run(method), method, runtime)[runtime]
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
