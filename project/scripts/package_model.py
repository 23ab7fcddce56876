"""Package a trained pipeline as `en_fastbioner_<corpus>` (or `..._teacher`): a
meta.json and model card made from the workflow's metrics, then `spacy package`
and an offline wheel build (spacy_fastbioner.packaging.package holds the logic)."""

from pathlib import Path
from typing import List, Optional

import typer
from wasabi import msg

from spacy_fastbioner.packaging.package import PACKAGE_RUNTIMES, ROLES, package_model

TEMPLATES = Path(__file__).parent.parent / "templates"


def main(
    # fmt: off
    model_dir: Path = typer.Argument(
        ..., help="Trained pipeline, e.g. training/NCBI-disease/student/model-best", exists=True, file_okay=False
    ),
    output_dir: Path = typer.Argument(..., help="Parent folder of the package directory"),
    corpus: str = typer.Option(..., "--corpus", help="Corpus the pipeline was trained on; names the package"),
    version: str = typer.Option(..., "--version", help="Package version"),
    role: str = typer.Option("student", "--role", help="student or teacher (adds a _teacher suffix)"),
    metrics: Optional[Path] = typer.Option(
        None, "--metrics", help="`spacy evaluate` JSON of this model on the test set"
    ),
    teacher_metrics: Optional[Path] = typer.Option(
        None, "--teacher-metrics", help="The teacher's, shown on a student's card"
    ),
    teacher_model: Optional[Path] = typer.Option(
        None, "--teacher-model", help="The teacher pipeline, for its size on disk"
    ),
    benchmark: Optional[Path] = typer.Option(
        None, "--benchmark", help="Benchmark JSON (optional: words/sec 'not measured' without it)"
    ),
    meta_template: Path = typer.Option(
        TEMPLATES / "meta.json", "--meta-template", help="Fields of meta.json", exists=True, dir_okay=False
    ),
    card_template: Path = typer.Option(
        TEMPLATES / "model-card.md.jinja", "--card-template", help="Jinja2 model card", exists=True, dir_okay=False
    ),
    runtime: str = typer.Option(
        "pytorch",
        "--runtime",
        help="pytorch (the trained pipeline as it is), onnx or openvino (its int8 export to that runtime, named <name>_<runtime>, requiring the runtime), or auto (the fastest batch-invariant form on this CPU, as `export --runtime auto`; named by the runtime it chose)",
    ),
    calibration: Optional[Path] = typer.Option(
        None,
        "--calibration",
        help="With --runtime onnx or openvino: training docs for the int8 export (as `spacy fastbioner export --calibration`; openvino needs them)",
    ),
    dev: Optional[Path] = typer.Option(
        None,
        "--dev",
        help="With --runtime auto: gold docs to score each candidate form on",
        exists=True,
        dir_okay=False,
    ),
    kb: Optional[Path] = typer.Option(
        None, "--kb", help="KB folder from `spacy fastbioner build-kb`: the package gets a fastbioner_linker with it"
    ),
    linking: List[Path] = typer.Option(
        [], "--linking", help="`evaluate-linking --output` JSON, for the card's normalisation scores (repeatable)"
    ),
    # fmt: on
) -> None:
    if role not in ROLES:
        msg.fail(f"Invalid --role {role!r}: expected one of {ROLES}", exits=1)
    if runtime not in ("pytorch",) + PACKAGE_RUNTIMES:
        msg.fail(f"Invalid --runtime {runtime!r}: expected pytorch or one of {PACKAGE_RUNTIMES}", exits=1)
    for label, path in (("metrics", metrics), ("teacher metrics", teacher_metrics), ("benchmark", benchmark)):
        if path is not None and not path.is_file():
            msg.warn(f"No {label} at {path}: the model card says 'not measured'")
    try:
        result = package_model(
            model_dir,
            output_dir,
            corpus=corpus,
            version=version,
            role=role,
            meta_template=meta_template,
            card_template=card_template,
            metrics_path=metrics,
            teacher_metrics_path=teacher_metrics,
            teacher_model_dir=teacher_model,
            benchmark_path=benchmark,
            runtime=None if runtime == "pytorch" else runtime,
            # The PyTorch package is the trained pipeline itself: nothing to calibrate.
            calibration=None if runtime == "pytorch" else calibration,
            kb_path=kb if kb and str(kb) else None,
            linking_paths=[path for path in linking if path.is_file()],
            dev=dev if runtime == "auto" else None,
        )
    except (ValueError, RuntimeError) as err:
        msg.fail(str(err), exits=1)
    size = result.wheel.stat().st_size / 2**20
    msg.good(f"Built {result.name} {result.version}: {result.wheel} ({size:.1f} MiB)")
    msg.text(f"Requirements: {', '.join(result.meta['requirements'])}")
    msg.text(f"Install: pip install {result.wheel}; load: spacy.load({result.name!r})")


if __name__ == "__main__":
    typer.run(main)
