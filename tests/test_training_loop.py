"""Tests for spacy_fastbioner.training (`spacy fastbioner train`): the same
model as `spacy train`, and a stopped-and-resumed run equal to an
uninterrupted one."""

import json
import shutil
from pathlib import Path
from typing import Dict, Iterator, Tuple

import numpy
import pytest
import spacy
from helpers import make_tiny_bert, synthetic_sentences
from spacy.cli.train import train as spacy_train
from spacy.language import Language
from spacy.tokens import DocBin
from thinc.api import Model

from spacy_fastbioner.training.loop import LOG_FILE, SELECTION_FILE, train_resumable
from spacy_fastbioner.training.state import TrainingStateError

CONFIG = Path(__file__).parent.parent / "project" / "configs" / "teacher.cfg"


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("loop")
    make_tiny_bert(path / "bert")
    nlp = spacy.blank("en")
    for name, seed, n in [("train", 1, 60), ("dev", 2, 20)]:
        db = DocBin()
        for words, tags in synthetic_sentences(n, seed=seed):
            doc = spacy.tokens.Doc(nlp.vocab, words=words, ents=tags)
            db.add(doc)
        db.to_disk(path / f"{name}.spacy")
    return path


def overrides(workdir: Path, **extra) -> Dict[str, object]:
    values = {
        "paths.train": str(workdir / "train.spacy"),
        "paths.dev": str(workdir / "dev.spacy"),
        "vars.teacher_model": str(workdir / "bert"),
        "training.optimizer.learn_rate.total_steps": 7,
        "training.optimizer.learn_rate.warmup_steps": 1,
        "training.optimizer.learn_rate.initial_rate": 0.002,
        "training.eval_frequency": 3,
        "training.batcher.size": 150,
        "components.transformer.model.get_spans.window": 16,
        "components.transformer.model.get_spans.stride": 12,
    }
    values.update(extra)
    return values


def parameters(nlp: Language) -> Iterator[Tuple[str, numpy.ndarray]]:
    for pipe_name, pipe in nlp.pipeline:
        model = getattr(pipe, "model", None)
        if not isinstance(model, Model):
            continue
        for i, node in enumerate(model.walk()):
            for name in node.param_names:
                if node.has_param(name):
                    yield f"{pipe_name}/{i}/{name}", numpy.asarray(node.get_param(name))
            for shim in node.shims:
                for name, value in shim._model.state_dict().items():
                    yield f"{pipe_name}/{i}/{name}", value.detach().numpy()


def assert_same_weights(a: Path, b: Path) -> None:
    pa, pb = dict(parameters(spacy.load(a))), dict(parameters(spacy.load(b)))
    assert pa.keys() == pb.keys() and len(pa) > 10
    for name in pa:
        numpy.testing.assert_array_equal(pa[name], pb[name], err_msg=name)


def test_same_model_as_spacy_train(workdir):
    ours = workdir / "ours"
    report = train_resumable(CONFIG, ours, overrides=overrides(workdir))
    assert report["complete"] and report["step"] == 7
    spacy_train(CONFIG, workdir / "spacy", overrides=overrides(workdir))
    assert_same_weights(ours / "model-last", workdir / "spacy" / "model-last")
    log = [json.loads(line) for line in (ours / LOG_FILE).read_text(encoding="utf8").splitlines()]
    assert [r["step"] for r in log] == [0, 3, 6]
    assert all("ents_f" in r for r in log)


def test_stopped_and_resumed_equals_uninterrupted(workdir):
    straight = workdir / "straight"
    train_resumable(CONFIG, straight, overrides=overrides(workdir))
    resumed = workdir / "resumed"
    first = train_resumable(CONFIG, resumed, overrides=overrides(workdir), steps_this_run=2)
    assert not first["complete"] and first["step"] == 1  # steps 0 and 1 done
    second = train_resumable(CONFIG, resumed, overrides=overrides(workdir), steps_this_run=3)
    assert not second["complete"] and second["step"] == 4
    last = train_resumable(CONFIG, resumed, overrides=overrides(workdir))
    assert last["complete"] and last["step"] == 7
    assert_same_weights(straight / "model-last", resumed / "model-last")
    log = lambda p: (p / LOG_FILE).read_text(encoding="utf8").splitlines()  # noqa: E731
    assert [json.loads(r)["score"] for r in log(straight)] == [json.loads(r)["score"] for r in log(resumed)]


def test_resume_refuses_other_overrides(workdir):
    out = workdir / "refuse"
    train_resumable(CONFIG, out, overrides=overrides(workdir), steps_this_run=1)
    with pytest.raises(TrainingStateError, match=r"training_state: the run was started with overrides"):
        train_resumable(CONFIG, out, overrides=overrides(workdir, **{"training.batcher.size": 100}))


def test_final_choice_on_the_whole_dev_set(workdir):
    out = workdir / "subset"
    train_resumable(CONFIG, out, overrides=overrides(workdir, **{"corpora.dev.limit": 5}), keep=2)
    selection = json.loads((out / SELECTION_FILE).read_text(encoding="utf8"))
    assert selection["dev_limit_in_training"] == 5
    assert 1 <= len(selection["candidates"]) <= 2
    best = max(selection["candidates"], key=lambda r: (r["dev_score"], -r["step"]))
    assert selection["chosen_step"] == best["step"]
    # model-best is that checkpoint
    assert_same_weights(out / "model-best", out / "checkpoints" / f"step-{best['step']}")
    shutil.rmtree(out)


def test_cli_stops_with_status_3_and_continues(workdir):
    from spacy.cli._util import app
    from typer.testing import CliRunner

    import spacy_fastbioner.cli  # noqa: F401  (registers `spacy fastbioner`)

    out = workdir / "cli"
    args = ["fastbioner", "train", str(CONFIG), "--output", str(out)]
    for key, value in overrides(workdir, **{"training.optimizer.learn_rate.total_steps": 2}).items():
        args += [f"--{key}", str(value)]
    result = CliRunner().invoke(app, args + ["--steps-this-run", "1"])
    assert result.exit_code == 3, result.output
    assert "run the same command again" in result.output
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert (out / "model-best" / "config.cfg").is_file()
