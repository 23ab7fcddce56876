"""`spacy fastbioner make-student`: a student pipeline from a trained teacher."""

from pathlib import Path
from typing import Optional

from spacy.cli._util import Arg, Opt
from wasabi import msg

from ._util import fastbioner_cli


@fastbioner_cli.command("make-student")
def make_student_cli(
    # fmt: off
    teacher_path: Path = Arg(..., help="Trained teacher pipeline", exists=True, file_okay=False),
    output_path: Path = Arg(..., help="Output directory for the student pipeline"),
    n_layers: Optional[int] = Opt(None, "--n-layers", "-n", help="Student layers (default: half the teacher's)"),
    layer_map: str = Opt(
        "skip", "--layer-map", "-m", help="skip, first, last, or comma-separated teacher layers (0-based), e.g. 1,3,5"
    ),
    # fmt: on
) -> None:
    """Make a student pipeline that keeps some of the teacher's transformer
    layers (with its embeddings and NER head), ready for `spacy fastbioner distill`."""
    from ..encoder.student import LAYER_MAPS, LayerMap, make_student
    from ..loading import load_pipeline

    chosen: LayerMap = layer_map
    if layer_map not in LAYER_MAPS:
        try:
            chosen = [int(i) for i in layer_map.split(",")]
        except ValueError:
            msg.fail(f"Invalid --layer-map {layer_map!r}: expected skip, first, last or e.g. 1,3,5", exits=1)
    try:
        teacher = load_pipeline(teacher_path)
        student = make_student(teacher, n_layers=n_layers, layer_map=chosen)
    except (OSError, ValueError) as err:
        msg.fail(str(err), exits=1)
    info = student.meta["fastbioner"]
    output_path.mkdir(parents=True, exist_ok=True)
    student.to_disk(output_path)
    t, s = info["teacher_parameters"], info["student_parameters"]
    msg.table(
        [
            ("teacher", info["teacher_layers"], f"{t['transformer']:,}", f"{t['total']:,}"),
            ("student", info["student_layers"], f"{s['transformer']:,}", f"{s['total']:,}"),
        ],
        header=("pipeline", "layers", "transformer params", "total params"),
        divider=True,
    )
    reduction = 1 - s["total"] / t["total"]
    msg.good(f"Saved student to {output_path}: teacher layers {info['layer_map']} ({reduction:.2%} fewer parameters)")
