"""`spacy fastbioner train`: `spacy train` that can stop and continue."""

from pathlib import Path
from typing import Optional

import typer
from spacy.cli._util import Arg, Opt, parse_config_overrides, setup_gpu
from wasabi import msg

from ._util import fastbioner_cli


@fastbioner_cli.command("train", context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def train_cli(
    # fmt: off
    ctx: typer.Context,
    config_path: Path = Arg(..., help="Training config", exists=True, dir_okay=False),
    output_path: Path = Opt(..., "--output", "-o", help="Output folder; a run found there is continued"),
    max_minutes: Optional[float] = Opt(None, "--max-minutes", help="End this run after this many minutes, resumable"),
    steps_this_run: Optional[int] = Opt(
        None, "--steps-this-run", help="End this run after this many updates, resumable"
    ),
    keep: int = Opt(3, "--keep", help="Best checkpoints kept for the final choice on the whole dev set"),
    use_gpu: int = Opt(-1, "--gpu-id", "-g", help="GPU ID or -1 for CPU"),
    # fmt: on
) -> None:
    """Train a pipeline as `spacy train` does (the same steps, evaluations and
    checkpoints), saving the optimizer and RNG state with model-last so that the
    run can be stopped and continued: run the same command again. At the end,
    the kept checkpoints are scored on the whole dev set to choose model-best.
    A run that stops before its last step exits with status 3.
    Config overrides as in `spacy train`, e.g. --paths.train corpus/train.spacy."""
    from ..training.loop import train_resumable
    from ..training.state import TrainingStateError

    overrides = parse_config_overrides(ctx.args)
    setup_gpu(use_gpu)
    try:
        report = train_resumable(
            config_path,
            output_path,
            overrides=overrides,
            max_minutes=max_minutes,
            steps_this_run=steps_this_run,
            keep=keep,
        )
    except (OSError, TrainingStateError) as err:
        msg.fail(str(err), exits=1)
    if report["complete"]:
        msg.good(f"Trained to step {report['step']}; saved {output_path / 'model-best'}")
    else:
        # A non-zero status, so that a workflow does not go on with an unfinished model.
        msg.warn(f"Stopped at step {report['step']}: run the same command again to continue", exits=3)
