"""`annotate`'s output and workers (issue 27, items 5-9 and 16): confidence
under every start method, hostile ids, one run per output folder, resuming
with other settings, workers that end with their parent, and no fork hook
left to later tests."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Dict, List

import pytest
import spacy

from spacy_fastbioner.annotate import AnnotateError, annotate
from spacy_fastbioner.annotate.lock import OutputLock
from spacy_fastbioner.annotate.shards import MANIFEST, SHARDS_DIR

pytest.importorskip("bioc")

REPO = Path(__file__).parent.parent
LINUX = sys.platform.startswith("linux")


def env() -> Dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}


@pytest.fixture(scope="module")
def ruler(tmp_path_factory) -> Path:
    nlp = spacy.blank("en", config={"nlp": {"tokenizer": {"@tokenizers": "spacy_fastbioner.BioTokenizer.v1"}}})
    nlp.add_pipe("entity_ruler").add_patterns([{"label": "Chemical", "pattern": "aspirin"}])  # type: ignore[attr-defined]
    path = tmp_path_factory.mktemp("ruler") / "model"
    nlp.to_disk(path)
    return path


def read_jsonl(path: Path) -> List[Dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf8").splitlines()]


# Item 5: confidence under fork, spawn and forkserver: one process (each start
# of Python with torch and spaCy costs seconds) runs the pipeline alone, then
# with two workers started by each method in turn.

CONFIDENCE_SCRIPT = """
import json, multiprocessing, sys
from spacy_fastbioner.annotate.local import load_pipeline
from spacy_fastbioner.annotate.confidence import doc_entities
from spacy_fastbioner.util.threads import limit_torch_threads_in_children

model, methods, texts = sys.argv[1], json.loads(sys.argv[2]), json.loads(sys.argv[3])
limit_torch_threads_in_children()
nlp = load_pipeline(model)
out = {"single": [doc_entities(doc) for doc in nlp.pipe(texts)]}
for method in methods:
    print("n_process=2 with", method, file=sys.stderr, flush=True)
    multiprocessing.set_start_method(method, force=True)
    out[method] = [doc_entities(doc) for doc in nlp.pipe(texts, n_process=2, batch_size=2)]
print(json.dumps(out))
"""
METHODS = ["fork", "spawn", "forkserver"]


@pytest.fixture(scope="module")
def start_methods_run(raw_text_model: Path) -> dict:
    """CONFIDENCE_SCRIPT's output for the start methods that exist here."""
    import multiprocessing

    from helpers import synthetic_sentences

    methods = [method for method in METHODS if method in multiprocessing.get_all_start_methods()]
    texts = [" ".join(words) + " ." for words, _ in synthetic_sentences(8, seed=5)]
    args = [sys.executable, "-c", CONFIDENCE_SCRIPT, str(raw_text_model), json.dumps(methods), json.dumps(texts)]
    result = subprocess.run(args, env=env(), capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("method", METHODS)
def test_confidence_under_every_start_method(start_methods_run: dict, method: str) -> None:
    if method not in start_methods_run:
        pytest.skip(f"{method} does not exist here")
    out = {"single": start_methods_run["single"], "multi": start_methods_run[method]}
    entities = [e for doc in out["multi"] for e in doc]
    assert entities, "the tiny pipeline finds no entities: the test would be vacuous"
    assert all(e[3] is not None and 0.0 < e[3] <= 1.0 for e in entities)
    for single, multi in zip(out["single"], out["multi"]):
        assert [e[:3] for e in single] == [e[:3] for e in multi]
        assert [e[3] for e in single] == pytest.approx([e[3] for e in multi], abs=1e-5)


def test_confidence_is_the_component_s_own(raw_text_model: Path) -> None:
    """No method of the component instance is replaced: what pickling keeps is what runs."""
    from spacy_fastbioner.annotate.local import load_pipeline

    nlp = load_pipeline(str(raw_text_model))
    ner = nlp.get_pipe("fastbioner_ner")
    assert "set_annotations" not in vars(ner) and ner.cfg["store_confidence"] is True


# Item 6: hostile ids.

HOSTILE = ["1\n999|t|forged title", "tab\there", "a|b", "<script>alert(1)</script>", "ok"]


@pytest.mark.parametrize("formats", [("jsonl",), ("pubtator",), ("bioc",), ("jsonl", "pubtator", "bioc")])
def test_hostile_ids_are_refused_or_escaped(tmp_path: Path, ruler: Path, formats) -> None:
    path = tmp_path / "in.jsonl"
    path.write_text("".join(json.dumps({"id": i, "text": "They took aspirin."}) + "\n" for i in HOSTILE))
    summary = annotate(str(ruler), [path], tmp_path / "out", formats=formats, html=5, quiet=True)
    errors = {e["id"]: e["reason"] for e in read_jsonl(tmp_path / "out" / "errors.jsonl")}
    refused = {"1\n999|t|forged title", "tab\there"} | ({"a|b"} if "pubtator" in formats else set())
    assert set(errors) == refused and all("id" in reason for reason in errors.values())
    assert summary["n_written"] == len(HOSTILE) - len(refused)
    for name in summary["outputs"].get("pubtator", []):
        lines = (tmp_path / "out" / SHARDS_DIR / name).read_text(encoding="utf8").splitlines()
        assert not any(line.startswith("999|") for line in lines)
        assert {line.split("|")[0].split("\t")[0] for line in lines if line} == {"<script>alert(1)</script>", "ok"}
    pages = [p.read_text(encoding="utf8") for p in (tmp_path / "out" / "html").glob("*.html")]
    assert pages and not any("<script>alert(1)</script>" in page for page in pages)
    assert any("&lt;script&gt;alert(1)&lt;/script&gt;" in page for page in pages)


# Item 7: one run per output folder.


def test_a_second_run_on_the_same_folder_is_refused(tmp_path: Path, ruler: Path) -> None:
    (tmp_path / "in.txt").write_text("They took aspirin.\n")
    out = tmp_path / "out"
    with OutputLock(out):
        (out / "shards").mkdir()
        (out / "shards" / "x.tmp").write_text("the other run's")
        with pytest.raises(AnnotateError, match=rf"being written by another annotate run \(pid {os.getpid()}"):
            annotate(str(ruler), [tmp_path / "in.txt"], out, quiet=True)
        assert (out / "shards" / "x.tmp").exists()  # nothing of the other run's was touched
    # The lock is free again (as after a killed run: the kernel drops an flock).
    assert annotate(str(ruler), [tmp_path / "in.txt"], tmp_path / "out2", quiet=True)["n_written"] == 1


def test_a_lock_left_by_a_dead_process_is_taken_over(tmp_path: Path, ruler: Path) -> None:
    (tmp_path / "in.txt").write_text("They took aspirin.\n")
    out = tmp_path / "out"
    out.mkdir()
    proc = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True, timeout=60
    )
    (out / ".annotate.lock").write_text(proc.stdout)  # a pid that no longer runs
    assert annotate(str(ruler), [tmp_path / "in.txt"], out, quiet=True)["n_written"] == 1


# Item 8: resuming with other settings.


def test_resume_with_other_run_settings_needs_force(tmp_path: Path, ruler: Path) -> None:
    (tmp_path / "in.txt").write_text("They took aspirin.\nMore aspirin.\nNone here.\n")
    out = tmp_path / "out"
    annotate(str(ruler), [tmp_path / "in.txt"], out, quiet=True, batch_size=4, shard_size=1)
    header = json.loads((out / MANIFEST).read_text().splitlines()[0])
    assert header["run"]["batch_size"] == 4 and header["run"]["max_batch_items"] is None
    assert set(header["run"]["runtime"]) == {"architectures", "versions"}
    assert header["model"]["fingerprint"]
    (out / MANIFEST).write_text("".join((out / MANIFEST).read_text().splitlines(keepends=True)[:-1]))
    with pytest.raises(AnnotateError, match=r"other run settings.*batch_size: 4 then, 8 now.*--force"):
        annotate(str(ruler), [tmp_path / "in.txt"], out, quiet=True, batch_size=8, shard_size=1)
    summary = annotate(str(ruler), [tmp_path / "in.txt"], out, quiet=True, batch_size=8, shard_size=1, force=True)
    assert summary["n_read"] == 3
    lines = [json.loads(line) for line in (out / MANIFEST).read_text().splitlines()[1:]]
    assert [line["run"]["batch_size"] for line in lines] == [4, 4, 8]


def test_force_and_max_doc_bytes_are_cli_options() -> None:
    from spacy.cli._util import app
    from typer.testing import CliRunner

    import spacy_fastbioner.cli  # noqa: F401

    text = CliRunner().invoke(app, ["fastbioner", "annotate", "--help"]).output
    assert "--force" in text and "--max-doc-bytes" in text and "pubmed-xml" in text


# Item 9: workers end with their parent.


def _children(pid: int) -> List[int]:
    from spacy_fastbioner.benchmark.scaling import _children as children

    return [c for c in children(pid) if not _zombie(c)]


def _zombie(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as file_:
            stat = file_.read()
    except OSError:
        return True
    return stat[stat.rindex(")") + 2] in "ZX"


@pytest.mark.skipif(not LINUX, reason="reads /proc")
def test_workers_end_when_the_annotating_process_is_killed(tmp_path: Path, raw_text_model: Path) -> None:
    from helpers import synthetic_sentences

    texts = [" ".join(words) + " ." for words, _ in synthetic_sentences(2000, seed=2)]
    (tmp_path / "in.txt").write_text("\n".join(texts) + "\n")
    args = [sys.executable, "-m", "spacy", "fastbioner", "annotate", str(raw_text_model), str(tmp_path / "in.txt")]
    args += ["-o", str(tmp_path / "out"), "-n", "2", "-q", "--shard-size", "2000", "-b", "4"]
    proc = subprocess.Popen(args, env=env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 300
        workers: List[int] = []
        while time.monotonic() < deadline and proc.poll() is None and len(workers) < 2:
            time.sleep(0.2)
            workers = _children(proc.pid)
        assert len(workers) == 2, "the run started no two workers"
        time.sleep(2)  # the workers are busy or waiting on their queues
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=60)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not all(_zombie(w) for w in workers):
            time.sleep(0.1)
        assert all(_zombie(w) for w in workers), "workers outlived the killed annotating process"
    finally:
        for worker in _children(proc.pid) if proc.poll() is None else []:
            os.kill(worker, signal.SIGKILL)
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=60)


# Item 16: no fork hook left active after a run.


@pytest.mark.skipif(not hasattr(os, "fork"), reason="fork")
def test_a_run_leaves_no_thread_limit_for_later_forks(tmp_path: Path, ruler: Path) -> None:
    import torch

    from spacy_fastbioner.util.threads import torch_threads_in_children

    (tmp_path / "in.txt").write_text("They took aspirin.\n")
    torch.set_num_threads(2)  # put back by conftest's fixture
    before = torch_threads_in_children()
    annotate(str(ruler), [tmp_path / "in.txt"], tmp_path / "out", quiet=True, n_threads=1)
    assert torch_threads_in_children() == before
    threads = torch.get_num_threads()
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report its torch threads, then leave at once
        os.write(write, str(torch.get_num_threads()).encode())
        os._exit(0)
    os.close(write)
    os.waitpid(pid, 0)
    assert int(os.read(read, 16)) == threads
    os.close(read)
