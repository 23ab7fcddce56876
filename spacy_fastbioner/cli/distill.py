"""`spacy fastbioner distill TEACHER STUDENT_CONFIG --output DIR` (spaCy v4's
signature), also registered as `spacy distill` while spaCy has no command of
that name (spaCy v4 brings its own)."""

from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional

import typer
from spacy import util
from spacy.cli._util import (
    Arg,
    Opt,
    app,
    import_code,
    parse_config_overrides,
    setup_gpu,
    show_validation_error,
)
from wasabi import msg

from ._util import fastbioner_cli

if TYPE_CHECKING:
    from spacy.language import Language

CONTEXT_SETTINGS = {"allow_extra_args": True, "ignore_unknown_options": True}


def inherit_student_meta(student: "Language", config: Any) -> None:
    """Carry the student's making (teacher, layer map) over from the pipeline
    its components are sourced from: `init_nlp` builds a new meta."""
    for component in config.interpolate()["components"].values():
        source = component.get("source")
        if isinstance(source, str) and (Path(source) / "meta.json").exists():
            meta = util.load_meta(Path(source) / "meta.json")
            if "fastbioner" in meta:
                student.meta["fastbioner"] = meta["fastbioner"]
                return


def distill_cli(
    # fmt: off
    ctx: typer.Context,  # This is only used to read additional arguments
    teacher_path: Path = Arg(..., help="Trained teacher pipeline", exists=True, file_okay=False),
    config_path: Path = Arg(..., help="Student config with a [distillation] block", exists=True, allow_dash=True),
    output_path: Optional[Path] = Opt(
        None, "--output", "--output-path", "-o", help="Output directory to store the student pipeline in"
    ),
    code_path: Optional[Path] = Opt(
        None, "--code", "-c", help="Path to Python file with additional code (registered functions) to be imported"
    ),
    use_gpu: int = Opt(-1, "--gpu-id", "-g", help="GPU ID or -1 for CPU"),
    # fmt: on
) -> None:
    """Distil a trained teacher pipeline into a student pipeline, with the
    settings of the student config: `[distillation]` (corpus, steps,
    optimizer, batcher, the loss) and `[training]` (dev corpus, evaluation,
    logger). Saves model-best and model-last to the output directory."""
    from spacy.training.initialize import init_nlp

    from ..distill.loop import distill
    from ..loading import load_pipeline

    overrides = parse_config_overrides(ctx.args)
    import_code(code_path)
    setup_gpu(use_gpu)
    if output_path is not None and not output_path.exists():
        output_path.mkdir(parents=True)
        msg.good(f"Created output directory: {output_path}")
    with show_validation_error(config_path):
        if "teacher" in util.load_config(config_path, interpolate=False).get("paths", {}):
            overrides.setdefault("paths.teacher", str(teacher_path))
        config = util.load_config(config_path, overrides=overrides, interpolate=False)
    msg.divider("Loading teacher")
    try:
        teacher = load_pipeline(teacher_path)
    except (OSError, ValueError) as err:
        msg.fail(f"Cannot load the teacher {str(teacher_path)!r}", str(err), exits=1)
    msg.divider("Initializing student")
    with show_validation_error(config_path, hint_fill=False):
        student = init_nlp(config, use_gpu=use_gpu)
    inherit_student_meta(student, config)
    msg.good("Initialized student pipeline")
    msg.divider("Distilling student")
    try:
        distill(teacher, student, output_path)
    except ValueError as err:
        msg.fail(str(err), exits=1)


def has_command(cli: typer.Typer, name: str) -> bool:
    """Whether a typer app has a command of this name.

    cli (typer.Typer): The app, e.g. spaCy's `spacy.cli._util.app`.
    name (str): The command name.
    RETURNS (bool): Whether one of its commands is called `name`.
    """
    return any(
        (info.name or info.callback.__name__.replace("_", "-")) == name
        for info in cli.registered_commands
        if info.callback is not None
    )


def register_distill(cli: typer.Typer, group: typer.Typer) -> bool:
    """Register the distill command as `distill` of `group` (the `spacy
    fastbioner` group), and as `distill` of `cli` (spaCy's app) unless that
    app has a `distill` command of its own.

    cli (typer.Typer): spaCy's app.
    group (typer.Typer): The plugin's command group.
    RETURNS (bool): Whether `spacy distill` is the plugin's command.
    """
    group.command("distill", context_settings=CONTEXT_SETTINGS)(distill_cli)
    if has_command(cli, "distill"):
        return False
    cli.command("distill", context_settings=CONTEXT_SETTINGS)(distill_cli)
    return True


SPACY_DISTILL_IS_OURS = register_distill(app, fastbioner_cli)
