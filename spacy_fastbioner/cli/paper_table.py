"""`spacy fastbioner paper-table METRICS_DIR --output results/`: the paper's
table from the project's metrics files."""

from pathlib import Path
from typing import Optional

from spacy.cli._util import Arg, Opt
from wasabi import msg

from ..paper_table import CORPORA, PaperTableError, gather_paper_table, write_paper_table
from ._util import fastbioner_cli


@fastbioner_cli.command("paper-table")
def paper_table_cli(
    # fmt: off
    metrics_dir: Path = Arg(
        ...,
        help="Folder of `spacy evaluate --output` files: <corpus>/teacher.json, <corpus>/student-<variant>-seed<k>.json",
        exists=True,
        file_okay=False,
    ),
    output_dir: Path = Opt(
        Path("results"), "--output", "-o", help="Output folder for paper-table.md and paper-table.json", file_okay=False
    ),
    training_dir: Optional[Path] = Opt(
        None,
        "--training",
        "-t",
        help="Folder of the trained students, to read each run's <corpus>/<variant>-seed<k>/distill_log.jsonl (wall seconds, seconds per step)",
        exists=True,
        file_okay=False,
    ),
    corpora: str = Opt(",".join(CORPORA), "--corpora", "-c", help="Comma-separated corpora, in the table's order"),
    # fmt: on
) -> None:
    """Gather the teacher and student metrics of each corpus into the paper's
    table: test P/R/F as mean ± sample SD over seeds, each student's gap to its
    teacher, KD against no KD and schedules against constant weights with
    their pooled SD, per-type scores for BC5CDR, and FastBioNER's figures
    beside them. Missing runs read "not run"."""
    names = [name.strip() for name in corpora.split(",") if name.strip()]
    if not names:
        msg.fail(f"Invalid --corpora {corpora!r}: expected comma-separated corpus names", exits=1)
    try:
        table = gather_paper_table(metrics_dir, training_dir=training_dir, corpora=names)
    except PaperTableError as err:
        msg.fail("Cannot make the paper table", str(err), exits=1)
    md_path, json_path = write_paper_table(table, output_dir)
    for corpus, entry in table["corpora"].items():
        ran = {variant: cell["n"] for variant, cell in entry["variants"].items() if cell["n"]}
        summary = ", ".join(f"{variant} x{n}" for variant, n in ran.items()) or "not run"
        msg.text(f"{corpus}: {summary}")
    for item in table["skipped"]:
        msg.warn(f"Skipped {item['file']}: {item['reason']}")
    msg.good(f"Saved {md_path} and {json_path}")
