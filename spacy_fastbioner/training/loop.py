"""A resumable `spacy train`: the same steps, evaluations and checkpoints as
spaCy's `train_while_improving` (and its helpers for batches and evaluation),
plus a training state in `model-last/training_state/` after every evaluation
and when a run is stopped, so that a run can be ended (`max_minutes`,
`steps_this_run`) and continued later to the same state an uninterrupted run
reaches. The dev curve goes to `train_log.jsonl`; the best few checkpoints by
the (possibly subset) dev score are kept and, at the end, scored again on the
whole dev set to choose `model-best`.
"""

import json
import shutil
import sys
import time
from pathlib import Path
from typing import IO, Any, Dict, Iterator, List, Optional, Union, cast

from spacy import util
from spacy.language import Language
from spacy.schemas import ConfigSchemaTraining
from spacy.training.initialize import init_nlp
from spacy.training.loop import create_evaluation_callback, create_train_batches, subdivide_batch
from spacy.util import registry, resolve_dot_names
from thinc.api import Config, Optimizer, constant, fix_random_seed
from wasabi import Printer

from .state import STATE_DIR, TrainingStateError, load_training_state, save_training_state

LOG_FILE = "train_log.jsonl"
CHECKPOINTS = "checkpoints"
SELECTION_FILE = "selection.json"


def train_resumable(
    config_path: Union[str, Path],
    output_path: Union[str, Path],
    *,
    overrides: Optional[Dict[str, Any]] = None,
    max_minutes: Optional[float] = None,
    steps_this_run: Optional[int] = None,
    keep: int = 3,
    stdout: IO = sys.stdout,
) -> Dict[str, Any]:
    """Train a pipeline as `spacy train` does, resuming from `output_path`'s
    `model-last` when it holds a training state.

    config_path (Path): The training config.
    output_path (Path): The output folder: model-last, model-best, checkpoints/, train_log.jsonl.
    overrides (Dict[str, Any]): Config overrides ("section.key": value); a
        resume must pass the same ones.
    max_minutes (float): End this run after this many minutes, with a state to resume.
    steps_this_run (int): End this run after this many updates, with a state to resume.
    keep (int): How many best checkpoints (by the training-time dev score) to keep
        for the final choice on the whole dev set.
    stdout (IO): Where to print progress.
    RETURNS (Dict[str, Any]): "step", "complete", "best_step", "best_score"
        and, when complete, "selection" (the full-dev scores of the kept checkpoints).
    """
    msg = Printer(no_print=True)
    overrides = dict(overrides or {})
    output_path = Path(output_path)
    last, state_dir = output_path / "model-last", output_path / "model-last" / STATE_DIR
    resuming = (state_dir / "state.json").exists()
    if resuming:
        nlp = util.load_model_from_path(last)
        config = nlp.config
        stored = json.loads((state_dir / "state.json").read_text(encoding="utf8"))["counters"]
        if stored["overrides"] != _jsonable(overrides):
            raise TrainingStateError(
                f"{state_dir}: the run was started with overrides {stored['overrides']}, not {_jsonable(overrides)}"
            )
    else:
        config = util.load_config(config_path, overrides=overrides, interpolate=False)
        nlp = init_nlp(config)
        output_path.mkdir(parents=True, exist_ok=True)
        (output_path / LOG_FILE).unlink(missing_ok=True)
    config = config.interpolate()
    T = registry.resolve(config["training"], schema=ConfigSchemaTraining)
    if T["seed"] is not None:
        fix_random_seed(T["seed"])
    train_corpus, dev_corpus = resolve_dot_names(config, [T["train_corpus"], T["dev_corpus"]])
    optimizer: Optimizer = T["optimizer"]
    dropouts = cast(Iterator[float], constant(T["dropout"]) if isinstance(T["dropout"], float) else T["dropout"])
    evaluate = create_evaluation_callback(nlp, dev_corpus, T["score_weights"])
    batches = create_train_batches(nlp, train_corpus, T["batcher"], T["max_epochs"])
    exclude, annotating = T["frozen_components"], T["annotating_components"]
    counters: Dict[str, Any] = {"next_step": 0, "losses": {}, "results": [], "words": 0, "seconds": 0.0}
    if resuming:
        # Replay the batches (their shuffles) and schedules up to the stored step;
        # then the stored state, whose RNGs are those of that step.
        for _ in range(stored["next_step"]):
            next(batches)
            next(dropouts)
            optimizer.step_schedules()
        counters = load_training_state(state_dir, nlp, optimizer)
        stdout.write(msg.info(f"Resuming {output_path} at step {counters['next_step']}") + "\n")
    counters["overrides"] = _jsonable(overrides)
    started, run_steps = time.monotonic(), 0
    seconds_before = counters["seconds"]
    complete = False
    losses: Dict[str, float] = counters["losses"]
    step = counters["next_step"] - 1
    for step, (epoch, batch) in enumerate(batches, start=counters["next_step"]):
        dropout = next(dropouts)
        for subbatch in subdivide_batch(batch, T["accumulate_gradient"]):
            # sgd=False: the update is finished below, once per batch, as spaCy's loop does.
            nlp.update(
                subbatch, drop=dropout, losses=losses, sgd=cast(Any, False), exclude=exclude, annotates=annotating
            )
        for name, proc in nlp.pipeline:
            if name not in exclude and getattr(proc, "is_trainable", False):
                if getattr(proc, "model", None) not in (True, False, None):
                    cast(Any, proc).finish_update(optimizer)
        optimizer.step_schedules()
        counters["words"] += sum(len(eg) for eg in batch)
        run_steps += 1
        counters["seconds"] = seconds_before + time.monotonic() - started
        complete = bool(T["max_steps"]) and step >= T["max_steps"]
        evaluated = not step % T["eval_frequency"]
        if evaluated:
            score, scores = evaluate()
            counters["results"].append([score, step])
            record = {"step": step, "epoch": epoch, "score": score, "losses": losses, "seconds": counters["seconds"]}
            record.update({k: v for k, v in scores.items() if isinstance(v, (int, float))})
            with (output_path / LOG_FILE).open("a", encoding="utf8") as file_:
                file_.write(json.dumps(record) + "\n")
            stdout.write(_log_line(record) + "\n")
            losses = {}
            _keep_best(nlp, output_path, counters["results"], step, keep)
        best_score, best_step = _best(counters["results"])
        out_of_patience = bool(T["patience"]) and step - best_step >= T["patience"]
        out_of_time = max_minutes is not None and time.monotonic() - started > max_minutes * 60
        stop_here = out_of_time or (steps_this_run is not None and run_steps >= steps_this_run)
        if evaluated or complete or out_of_patience or stop_here:
            counters.update(next_step=step + 1, losses=losses)
            nlp.to_disk(last)
            save_training_state(state_dir, nlp, optimizer, counters)
        if complete or out_of_patience or stop_here:
            complete = complete or out_of_patience
            break
    else:
        complete = True  # max_epochs reached
    best_score, best_step = _best(counters["results"])
    report: Dict[str, Any] = {"step": step, "complete": complete, "best_step": best_step, "best_score": best_score}
    if complete:
        report["selection"] = choose_best(output_path, config, stdout=stdout)
    return report


def choose_best(output_path: Path, config: Config, *, stdout: IO = sys.stdout) -> List[Dict[str, Any]]:
    """Score the kept checkpoints (and model-last) on the whole dev set, and copy
    the best to `model-best`. With no dev limit in the config, the training-time
    scores are already the whole dev set's, and those are used.
    """
    msg = Printer(no_print=True)
    dev_name = config["training"]["dev_corpus"]
    limit = util.dot_to_object(config, dev_name).get("limit", 0)
    candidates = sorted((output_path / CHECKPOINTS).glob("step-*"), key=lambda p: int(p.name.split("-")[1]))
    rows: List[Dict[str, Any]] = []
    with (output_path / LOG_FILE).open(encoding="utf8") as file_:
        logged = {r["step"]: r["score"] for r in map(json.loads, file_)}
    for path in candidates:
        step = int(path.name.split("-")[1])
        if limit:
            nlp = util.load_model_from_path(path)
            full = Config(config).copy()
            util.dot_to_object(full, dev_name)["limit"] = 0
            (dev_corpus,) = resolve_dot_names(full, [dev_name])
            weights = registry.resolve(full["training"], schema=ConfigSchemaTraining)["score_weights"]
            score, _ = create_evaluation_callback(nlp, dev_corpus, weights)()
        else:
            score = logged[step]
        rows.append({"step": step, "dev_score_in_training": logged.get(step), "dev_score": score})
    if not rows:
        return rows
    best = max(rows, key=lambda r: (r["dev_score"], -r["step"]))
    target = output_path / "model-best"
    if target.exists():
        shutil.rmtree(target)
    shutil.copytree(output_path / CHECKPOINTS / f"step-{best['step']}", target)
    (output_path / SELECTION_FILE).write_text(
        json.dumps({"dev_limit_in_training": limit, "chosen_step": best["step"], "candidates": rows}, indent=2),
        encoding="utf8",
    )
    stdout.write(msg.good(f"model-best: step {best['step']} (whole-dev score {best['dev_score']:.4f})") + "\n")
    return rows


def _keep_best(nlp: Language, output_path: Path, results: List[List[float]], step: int, keep: int) -> None:
    """Keep a copy of this step's pipeline if it is among the `keep` best."""
    ranked = sorted(results, key=lambda r: (r[0], -r[1]), reverse=True)[:keep]
    kept = {int(s) for _, s in ranked}
    folder = output_path / CHECKPOINTS
    folder.mkdir(parents=True, exist_ok=True)
    if step in kept:
        nlp.to_disk(folder / f"step-{step}")
        if step == int(ranked[0][1]):
            target = output_path / "model-best"
            if target.exists():
                shutil.rmtree(target)
            shutil.copytree(folder / f"step-{step}", target)
    for path in folder.glob("step-*"):
        if int(path.name.split("-")[1]) not in kept:
            shutil.rmtree(path)


def _best(results: List[List[float]]) -> "tuple[float, int]":
    if not results:
        return 0.0, 0
    score, neg_step = max((r[0], -r[1]) for r in results)
    return score, int(-neg_step)


def _log_line(record: Dict[str, Any]) -> str:
    losses = "  ".join(f"{k} {v:8.2f}" for k, v in record["losses"].items())
    ents = "  ".join(f"{k} {100 * record[k]:6.2f}" for k in ("ents_f", "ents_p", "ents_r") if k in record)
    return f"step {record['step']:6d}  epoch {record['epoch']:3d}  {losses}  {ents}  score {record['score']:.4f}"


def _jsonable(overrides: Dict[str, Any]) -> Dict[str, Any]:
    return json.loads(json.dumps(overrides, default=str))
