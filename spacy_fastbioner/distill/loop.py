"""The distillation loop: spaCy's training loop with the distillation step in
place of `nlp.update`, driven by the student config's `[distillation]` block."""

import shutil
import sys
from itertools import count
from pathlib import Path
from timeit import default_timer as timer
from typing import IO, Any, Callable, Dict, Iterable, Iterator, List, Optional, Tuple, TypeVar, Union

import srsly
from pydantic import BaseModel, ConfigDict, StrictBool, StrictFloat, StrictInt, StrictStr
from spacy.language import Language
from spacy.schemas import Batcher, ConfigSchemaTraining
from spacy.training.loop import (
    create_before_to_disk_callback,
    create_evaluation_callback,
    create_train_batches,
    update_meta,
)
from spacy.util import registry, resolve_dot_names
from thinc.api import Optimizer, fix_random_seed
from thinc.config import Promise
from wasabi import Printer

from ..util.process_memory import peak_rss_mb, release_free_memory, rss_mb

DIR_MODEL_BEST = "model-best"
DIR_MODEL_LAST = "model-last"
LOG_FILE = "distill_log.jsonl"
# Steps between returns of freed C heap memory to the OS (see release_free_memory).
TRIM_EVERY = 10
BatchT = TypeVar("BatchT")


class ConfigSchemaDistillation(BaseModel):
    """The `[distillation]` block, after resolving (as in spaCy v4, plus the
    step that holds FastBioNER's loss settings)."""

    teacher: Optional[StrictStr] = None
    corpus: StrictStr
    dropout: StrictFloat
    max_epochs: StrictInt
    max_steps: StrictInt
    optimizer: Optimizer
    batcher: Batcher
    step: Union[Callable[..., Dict[str, float]], Promise]
    eval_on_start: StrictBool = False

    model_config = ConfigDict(extra="forbid", arbitrary_types_allowed=True)


def distill(
    teacher: Language,
    student: Language,
    output_path: Optional[Path] = None,
    *,
    stdout: Optional[IO] = None,
    stderr: Optional[IO] = None,
) -> Tuple[Language, Optional[Path]]:
    """Distil a teacher pipeline into an initialized student pipeline, with the
    settings of the student config's `[distillation]` and `[training]` blocks.
    Evaluates on the dev corpus every `training.eval_frequency` steps, and
    saves `model-best` and `model-last` under `output_path`.

    teacher (Language): The trained teacher; never updated.
    student (Language): The initialized student with the full config.
    output_path (Optional[Path]): Where to save the student.
    stdout, stderr (Optional[IO]): Where the log goes; sys.stdout and
        sys.stderr as they are at the call (as spaCy's `train`), when None.
    RETURNS (Tuple[Language, Optional[Path]]): The student and the path of
        model-last.
    """
    stdout = sys.stdout if stdout is None else stdout
    stderr = sys.stderr if stderr is None else stderr
    msg = Printer(no_print=True)
    config = student.config.interpolate()
    if "distillation" not in config:
        raise ValueError("the student config has no [distillation] block")
    if config["training"]["seed"] is not None:
        fix_random_seed(config["training"]["seed"])
    T = registry.resolve(config["training"], schema=ConfigSchemaTraining)
    D = registry.resolve(config["distillation"], schema=ConfigSchemaDistillation)
    dev_corpus, distill_corpus = resolve_dot_names(config, [T["dev_corpus"], D["corpus"]])
    optimizer: Optimizer = D["optimizer"]
    step_fn = D["step"]
    max_steps, max_epochs = D["max_steps"], D["max_epochs"]
    if max_steps <= 0 and max_epochs <= 0:
        raise ValueError("[distillation] needs max_steps > 0 or max_epochs > 0")
    total_steps = max_steps
    if total_steps <= 0:
        n_batches = sum(1 for _ in D["batcher"](list(distill_corpus(student))))
        total_steps = n_batches * max_epochs
    evaluate = create_evaluation_callback(student, dev_corpus, T["score_weights"])
    before_to_disk = create_before_to_disk_callback(T["before_to_disk"])

    def save(is_best: bool) -> None:
        if output_path is None:
            return
        with student.use_params(optimizer.averages):
            before_to_disk(student).to_disk(output_path / DIR_MODEL_LAST)
        if is_best:
            if (output_path / DIR_MODEL_BEST).exists():
                shutil.rmtree(output_path / DIR_MODEL_BEST)
            shutil.copytree(output_path / DIR_MODEL_LAST, output_path / DIR_MODEL_BEST)

    if output_path is not None:
        output_path.mkdir(parents=True, exist_ok=True)
        for sub in (DIR_MODEL_BEST, DIR_MODEL_LAST):
            if (output_path / sub).exists():
                shutil.rmtree(output_path / sub)
    stdout.write(msg.info(f"Teacher: {teacher.pipe_names}, student: {student.pipe_names}") + "\n")
    stdout.write(msg.info(f"Distillation steps: {total_steps}") + "\n")
    log_step, finalize_logger = T["logger"](student, stdout, stderr)
    log_file = open(output_path / LOG_FILE, "w", encoding="utf8") if output_path else None
    batches = with_last(create_train_batches(student, distill_corpus, D["batcher"], max_epochs))
    results: List[Tuple[float, int]] = []
    losses: Dict[str, float] = {}
    words_seen = 0
    start = timer()
    step_seconds = 0.0
    n_timed = 0
    try:
        for step, (epoch, batch), is_final_batch in batches:
            progress = min(1.0, step / max(1, total_steps - 1))
            step_start = timer()
            step_fn(
                teacher,
                student,
                batch,
                sgd=optimizer,
                drop=D["dropout"],
                losses=losses,
                progress=progress,
            )
            optimizer.step_schedules()
            if step % TRIM_EVERY == 0:
                release_free_memory()
            step_seconds += timer() - step_start
            n_timed += 1
            words_seen += sum(len(eg) for eg in batch)
            # With max_epochs, the batcher may give a few batches more or fewer
            # than counted up front: the last batch ends the run either way.
            last = step + 1 >= total_steps or is_final_batch
            is_best: Optional[bool] = None
            score, other_scores = None, None
            if (step % T["eval_frequency"] == 0 and (step or D["eval_on_start"])) or last:
                with student.use_params(optimizer.averages):
                    score, other_scores = evaluate()
                results.append((score, step))
                is_best = score == max(results)[0]
            info: Dict[str, Any] = {
                "epoch": epoch,
                "step": step,
                "score": score,
                "other_scores": other_scores,
                "losses": losses,
                "checkpoints": results,
                "seconds": int(timer() - start),
                "words": words_seen,
            }
            if is_best is not None:
                update_meta(T, student, info)
                save(is_best)
                if log_file is not None:
                    record = {k: info[k] for k in ("epoch", "step", "score", "seconds", "words")}
                    # Seconds per step of the steps themselves, without evaluation.
                    record.update(
                        losses=dict(losses),
                        progress=progress,
                        step_seconds=step_seconds / max(1, n_timed),
                        rss_mb=round(rss_mb(), 1),
                        peak_rss_mb=round(peak_rss_mb(), 1),
                    )
                    step_seconds, n_timed = 0.0, 0
                    log_file.write(srsly.json_dumps(record) + "\n")
                    log_file.flush()
            log_step(info if is_best is not None else None)
            if is_best is not None:
                losses = {}
            if last:
                break
    finally:
        finalize_logger()
        if log_file is not None:
            log_file.close()
    if output_path is not None:
        stdout.write(msg.good("Saved pipeline to output directory", output_path / DIR_MODEL_LAST) + "\n")
        return student, output_path / DIR_MODEL_LAST
    return student, None


def with_last(batches: Iterable[BatchT]) -> Iterator[Tuple[int, BatchT, bool]]:
    """Number the batches and flag the final one, by reading one ahead."""
    iterator = iter(batches)
    try:
        current = next(iterator)
    except StopIteration:
        return
    for i in count():
        try:
            following = next(iterator)
        except StopIteration:
            yield i, current, True
            return
        yield i, current, False
        current = following
