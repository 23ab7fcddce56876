"""The workflow through the CLI on tiny models: `spacy train` with the
project's teacher config, `spacy fastbioner make-student`, `spacy fastbioner
distill` with the project's student config; and a light `spacy` CLI.

Most commands run in this process through spaCy's typer app (`invoke`):
each start of Python with torch and spaCy costs seconds. One distillation
runs as `python -m spacy fastbioner distill`, end to end, and `spacy info`
in a fresh process (what it imports is the test)."""

import json
import re
import runpy
import subprocess
import sys
from pathlib import Path

import pytest
import spacy
import typer
from helpers import make_tiny_bert, synthetic_sentences, write_iob
from spacy.cli._util import app
from typer.testing import CliRunner

from spacy_fastbioner.cli.distill import distill_cli, has_command, register_distill

REPO = Path(__file__).parent.parent
CONFIGS = REPO / "project" / "configs"


def run(*args: str, cwd: Path = REPO) -> str:
    result = subprocess.run([sys.executable, *args], cwd=cwd, capture_output=True, text=True, env=_env(), timeout=900)
    if result.returncode != 0:
        raise AssertionError(f"{args} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
    return result.stdout


def invoke(*args: str) -> str:
    """A `spacy ...` command run in this process; its output, or the test's failure."""
    result = CliRunner().invoke(app, list(args))
    if result.exit_code != 0:
        raise AssertionError(f"{args} failed ({result.exit_code}):\n{result.output[-3000:]}") from result.exception
    return result.output


def _env():
    import os

    env = dict(os.environ)
    env.update(HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", PYTHONWARNINGS="ignore")
    return env


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    """A tiny BERT, an IOB corpus converted by the project's corpus script,
    and a file of unlabelled text."""
    path = tmp_path_factory.mktemp("cli")
    make_tiny_bert(path / "bert", n_layers=2, max_positions=512)  # teacher.cfg cuts windows of 128 tokens
    iob = path / "iob"
    iob.mkdir()
    write_iob(iob / "train.tsv", synthetic_sentences(120, seed=1))
    write_iob(iob / "devel.tsv", synthetic_sentences(30, seed=2))
    write_iob(iob / "test.tsv", synthetic_sentences(30, seed=3))
    script = REPO / "project" / "scripts" / "make_corpus.py"
    with pytest.MonkeyPatch.context() as patch:  # the script as `spacy project run` runs it, in this process
        patch.setattr(sys, "argv", [str(script), str(iob), str(path / "corpus")])
        with pytest.raises(SystemExit) as exit_:
            runpy.run_path(str(script), run_name="__main__")
    assert exit_.value.code in (0, None)
    raw = [" ".join(words) + " ." for words, _ in synthetic_sentences(40, seed=4)]
    (path / "raw.txt").write_text("\n".join(raw) + "\n", encoding="utf8")
    return path


def corpus_args(workdir: Path):
    return [
        "--paths.train",
        str(workdir / "corpus" / "train.spacy"),
        "--paths.dev",
        str(workdir / "corpus" / "dev.spacy"),
    ]


@pytest.fixture(scope="module")
def teacher_dir(workdir) -> Path:
    out = invoke(
        "train",
        str(CONFIGS / "teacher.cfg"),
        "--output",
        str(workdir / "teacher"),
        "--vars.teacher_model",
        str(workdir / "bert"),
        *corpus_args(workdir),
        "--training.optimizer.learn_rate.total_steps",
        "24",
        "--training.optimizer.learn_rate.warmup_steps",
        "2",
        "--training.optimizer.learn_rate.initial_rate",
        "0.002",
        "--training.eval_frequency",
        "8",
        "--training.batcher.size",
        "200",
    )
    assert "ENTS_F" in out and "LOSS FASTB" in out
    return workdir / "teacher" / "model-best"


def test_corpus_script_converts_iob(workdir):
    stats = json.loads((workdir / "corpus" / "stats.json").read_text())
    assert stats["train.spacy"]["sentences"] == 120
    assert stats["dev.spacy"]["entities"] > 0


def test_spacy_train_teacher(teacher_dir):
    nlp = spacy.load(teacher_dir)
    assert nlp.pipe_names == ["sentences", "transformer", "fastbioner_ner"]
    assert nlp.get_pipe("fastbioner_ner").labels == ("Chemical", "Disease")
    assert nlp.config["nlp"]["tokenizer"]["@tokenizers"] == "spacy_fastbioner.BioTokenizer.v1"


def test_make_student_and_distill(workdir, teacher_dir):
    out = invoke(
        "fastbioner",
        "make-student",
        str(teacher_dir),
        str(workdir / "student-init"),
        "--n-layers",
        "1",
        "--layer-map",
        "last",
    )
    assert "fewer parameters" in out
    student_init = spacy.load(workdir / "student-init")
    assert student_init.meta["fastbioner"]["layer_map"] == [1]
    out = run(
        "-m",
        "spacy",
        "fastbioner",
        "distill",
        str(teacher_dir),
        str(CONFIGS / "student.cfg"),
        "--output",
        str(workdir / "student"),
        "--paths.student",
        str(workdir / "student-init"),
        "--paths.raw",
        str(workdir / "raw.txt"),
        *corpus_args(workdir),
        "--distillation.optimizer.learn_rate.total_steps",
        "12",
        "--distillation.optimizer.learn_rate.warmup_steps",
        "2",
        "--distillation.batcher.size",
        "200",
        "--distillation.step.weights.hidden",
        "0.5",
        "--training.eval_frequency",
        "5",
    )
    assert "ENTS_F" in out and "Saved pipeline" in out
    student = spacy.load(workdir / "student" / "model-best")
    assert student.meta["fastbioner"]["layer_map"] == [1]
    assert "ents_f" in student.meta["performance"]
    log = [json.loads(line) for line in (workdir / "student" / "distill_log.jsonl").read_text().splitlines()]
    assert log[-1]["step"] == 11 and log[-1]["progress"] == pytest.approx(1.0)
    parts = {key for record in log for key in record["losses"]}
    assert {"fastbioner_ner_soft", "fastbioner_ner_hard", "hidden"} <= parts


def test_distill_rejects_a_config_without_distillation_block(workdir, teacher_dir):
    args = ["distill", str(teacher_dir), str(CONFIGS / "teacher.cfg"), "--vars.teacher_model", str(workdir / "bert")]
    result = CliRunner().invoke(app, [*args, *corpus_args(workdir)])
    assert result.exit_code != 0
    assert "[distillation]" in result.output + str(result.exception)


def test_teacher_targets_and_a_cached_distillation_by_epochs(workdir, teacher_dir):
    """`spacy fastbioner teacher-targets`, then `spacy distill` reading the
    store, by epochs and without max_steps: the last step evaluates and saves
    model-best and model-last."""
    store = workdir / "targets"
    out = invoke(
        "fastbioner",
        "teacher-targets",
        str(teacher_dir),
        str(store),
        "--data",
        str(workdir / "corpus" / "train.spacy"),
        "--raw",
        str(workdir / "raw.txt"),
        "--min-length",
        "1",
    )
    assert "Saved the logits of" in out
    meta = json.loads((store / "meta.json").read_text())
    assert meta["n_docs"] >= 120 and meta["teacher"]["tags"][0] == "O"
    if not (workdir / "student-init").exists():
        invoke(
            "fastbioner",
            "make-student",
            str(teacher_dir),
            str(workdir / "student-init"),
            "--n-layers",
            "1",
            "--layer-map",
            "last",
        )
    output = workdir / "student-cached"
    out = invoke(
        "fastbioner",
        "distill",
        str(teacher_dir),
        str(CONFIGS / "student.cfg"),
        "--output",
        str(output),
        "--paths.student",
        str(workdir / "student-init"),
        "--paths.raw",
        str(workdir / "raw.txt"),
        "--paths.teacher_targets",
        str(store),
        *corpus_args(workdir),
        "--corpora.unlabelled.min_length",
        "1",
        "--distillation.max_steps",
        "0",
        "--distillation.max_epochs",
        "2",
        "--distillation.batcher.size",
        "300",
        "--training.eval_frequency",
        "1000",
    )
    assert (output / "model-best" / "meta.json").exists() and (output / "model-last" / "meta.json").exists()
    assert "Saved pipeline" in out  # the log goes to sys.stdout as it is at the call, which CliRunner captures
    log = [json.loads(line) for line in (output / "distill_log.jsonl").read_text().splitlines()]
    # eval_frequency is beyond the run: the only evaluation is the last step's.
    assert len(log) == 1 and log[0]["epoch"] == 1 and log[0]["score"] is not None
    assert log[0]["losses"]["teacher_targets_hit"] > 0
    assert log[0]["losses"].get("teacher_targets_missing", 0) == 0
    assert log[0]["step_seconds"] > 0 and log[0]["rss_mb"] > 0


def test_spacy_info_does_not_import_transformers():
    """spaCy imports the plugin's CLI entry point on every `python -m spacy`
    call: that must not import `transformers` (seconds of start-up)."""
    result = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "spacy", "info"],
        capture_output=True,
        text=True,
        env=_env(),
        timeout=900,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    imported = set(re.findall(r"^import time:\s+\d+ \|\s+\d+ \|\s+(\S+)$", result.stderr, re.MULTILINE))
    assert "spacy_fastbioner.cli.distill" in imported, "the plugin's CLI was not loaded: the check would be vacuous"
    heavy = sorted(name for name in imported if name.split(".")[0] in ("transformers", "spacy_transformers"))
    assert not heavy, heavy[:10]


def test_distill_has_a_stable_home_and_yields_spacy_distill():
    def own_distill() -> None:
        """spaCy's own command."""

    spacy_v3, group = typer.Typer(), typer.Typer()
    assert register_distill(spacy_v3, group)
    assert has_command(group, "distill") and has_command(spacy_v3, "distill")
    spacy_v4, group = typer.Typer(), typer.Typer()
    spacy_v4.command("distill")(own_distill)
    assert not register_distill(spacy_v4, group)
    assert has_command(group, "distill")
    assert [info.callback for info in spacy_v4.registered_commands] == [own_distill]
    assert distill_cli in [info.callback for info in group.registered_commands]
