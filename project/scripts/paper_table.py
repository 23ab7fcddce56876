"""The paper's table: test P/R/F of each corpus's teacher and students, as the
mean ± sample standard deviation over seeds, gathered from the `spacy evaluate
--output` files of the project (`metrics/<corpus>/teacher.json`,
`metrics/<corpus>/student-<variant>-seed<k>.json`), beside FastBioNER's own
figures. A run without a metrics file reads "not run": no figure is made up.

`gather_paper_table` builds a JSON-able dict; `render_markdown` renders that
same dict, so the two outputs cannot disagree.
"""

import json
import math
import re
import statistics
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, Iterable, List, Optional, Sequence, Tuple

import srsly
import typer
from paper_table_md import NOT_RUN, render_markdown
from wasabi import msg

# A corpus's runs with a domain-adapted teacher (`adapt-encoder`) are a corpus of their own,
# "<corpus>-adapted" (metrics/NCBI-disease-adapted/...), so that the table keeps both.
# The release models (`release` workflow: trained on train + dev) are "<corpus>-release", rows
# of their own, never mixed with the runs selected on dev.
ADAPTED, RELEASE = "-adapted", "-release"
BASE_CORPORA = ("NCBI-disease", "BC5CDR-chem", "BC4CHEMD", "BC5CDR")
CORPORA = tuple(corpus + suffix for corpus in BASE_CORPORA for suffix in ("", ADAPTED, RELEASE))
TEACHER = "teacher"
DYNAMIC = "student-dynamic"
CONSTANT = "student-constant"
NO_KD = "student-nokd"
VARIANTS = (TEACHER, DYNAMIC, CONSTANT, NO_KD)
# Corpora with several entity types, whose per-type scores get a table.
PER_TYPE_CORPORA = ("BC5CDR", "BC5CDR" + ADAPTED, "BC5CDR" + RELEASE)
# FastBioNER (Hu et al. 2021), BioBERT teacher, 12 -> 6 layers: the dynamic-KD
# student's test F and its gap to the teacher. No BC5CDR (both types) figure.
PAPER: Dict[str, Dict[str, float]] = {
    "NCBI-disease": {"f": 88.63, "gap": -1.10},
    "BC5CDR-chem": {"f": 92.82, "gap": -0.86},
    "BC4CHEMD": {"f": 92.60, "gap": -0.15},
}
PAPER_VARIANT = DYNAMIC
# Inference forms of a trained student (the `int8-seed` command): `<variant>-<form>`,
# scored against the same seed's fp32 student, not trained or compared as students.
INT8_FORMS = {
    "int8": "PyTorch dynamic int8 (`quantize`)",
    "onnx-int8": "ONNX Runtime dynamic int8 (`export --int8`)",
    "onnx-int8-smooth": "ONNX Runtime int8, smoothed (`export --int8 --calibration`)",
    "openvino-int8": "OpenVINO static int8 (`export --runtime openvino --int8 --calibration`)",
    "openvino-int8-packed": "OpenVINO static int8, packed (`export --runtime openvino --int8 --calibration --packed`)",
    "auto": "the fast student: the form `export --runtime auto` chose on the CPU it ran on",
}
LOG_FILE = "distill_log.jsonl"
MD_FILE = "paper-table.md"
JSON_FILE = "paper-table.json"
EXPECTED_NAMES = "teacher.json, teacher-seed<k>.json or student-<variant>-seed<k>.json"
_RUN_NAME = re.compile(
    r"^(?:(?P<teacher>teacher)|(?P<student>student(?:-[a-z0-9][a-z0-9-]*?)?))(?:-seed(?P<seed>[0-9]+))?$"
)
_PRF = (("p", "ents_p"), ("r", "ents_r"), ("f", "ents_f"))


def base_corpus(corpus: str) -> str:
    """The corpus of an adapted-teacher or release row: "NCBI-disease-adapted" -> "NCBI-disease"."""
    for suffix in (ADAPTED, RELEASE):
        if corpus.endswith(suffix) and corpus.removesuffix(suffix) in BASE_CORPORA:
            return corpus.removesuffix(suffix)
    return corpus


class PaperTableError(ValueError):
    """A metrics or log file that cannot be read, with its path and what was expected."""


@dataclass
class Run:
    """One evaluated model: its seed, file and test scores in percent."""

    seed: Optional[int]
    path: Path
    prf: Dict[str, float]
    per_type: Dict[str, Dict[str, float]] = field(default_factory=dict)


def parse_run_name(stem: str) -> Tuple[Optional[str], Optional[int], str]:
    """The variant and seed a metrics file name stands for.

    stem (str): The file name without ".json", e.g. "student-nokd-seed2".
    RETURNS (Tuple[Optional[str], Optional[int], str]): The variant (None when
        the file is not a run of the table), the seed (None when unseeded) and
        the reason for skipping it ("" when not skipped).
    """
    match = _RUN_NAME.match(stem)
    if match is None:
        return None, None, f"not a run of the table (expected {EXPECTED_NAMES})"
    seed = int(match["seed"]) if match["seed"] is not None else None
    if match["student"] is not None and (seed is None or match["student"] == "student"):
        # The single runs of the older layout (student.json, student-nokd.json):
        # mixing them into seeded means would blur what the table measures.
        return (
            None,
            None,
            "a student run without a variant and a seed: the table counts student-<variant>-seed<k>.json only",
        )
    return match["teacher"] or match["student"], seed, ""


def _fraction(value: Any, path: Path, key: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value <= 1.0:
        raise PaperTableError(f"{path}: expected {key} to be a number from 0 to 1, found {value!r}")
    return 100.0 * float(value)


def read_run(path: Path, seed: Optional[int] = None) -> Run:
    """Read a `spacy evaluate --output` JSON file.

    path (Path): The file.
    seed (Optional[int]): The run's seed, from its file name.
    RETURNS (Run): ents_p/r/f and ents_per_type, as percentages.
    """
    try:
        # The standard library's error names the line and column; srsly's does not.
        data = json.loads(Path(path).read_text(encoding="utf8"))
    except json.JSONDecodeError as err:
        raise PaperTableError(
            f"{path}:{err.lineno}: not valid JSON ({err.msg}, column {err.colno}); "
            "expected the output of `spacy evaluate --output`"
        ) from None
    except UnicodeDecodeError as err:
        raise PaperTableError(
            f"{path}: not UTF-8 text ({err.reason}); expected `spacy evaluate --output` JSON"
        ) from None
    if not isinstance(data, dict):
        raise PaperTableError(f"{path}: expected a JSON object with ents_p/ents_r/ents_f, found {type(data).__name__}")
    missing = [key for _, key in _PRF if key not in data]
    if missing:
        raise PaperTableError(
            f"{path}: expected `spacy evaluate --output` scores with ents_p/ents_r/ents_f, "
            f"missing {', '.join(missing)} (found keys: {', '.join(sorted(data)) or 'none'})"
        )
    prf = {name: _fraction(data[key], path, key) for name, key in _PRF}
    per_type_data = data.get("ents_per_type") or {}
    if not isinstance(per_type_data, dict):
        raise PaperTableError(f"{path}: expected ents_per_type to be an object, found {per_type_data!r}")
    per_type: Dict[str, Dict[str, float]] = {}
    for label, scores in per_type_data.items():
        if not isinstance(scores, dict) or any(k not in scores for k in "prf"):
            raise PaperTableError(f"{path}: expected ents_per_type.{label} to have p, r and f, found {scores!r}")
        per_type[label] = {k: _fraction(scores[k], path, f"ents_per_type.{label}.{k}") for k in "prf"}
    return Run(seed=seed, path=Path(path), prf=prf, per_type=per_type)


def read_distill_log(path: Path) -> Dict[str, float]:
    """The wall time of a distillation run from its `distill_log.jsonl` (one
    record per evaluation, with cumulative "seconds" and the "step").

    path (Path): The log file.
    RETURNS (Dict[str, float]): "wall_s", "steps" and "s_per_step".
    """
    last: Optional[Dict[str, Any]] = None
    with Path(path).open(encoding="utf8") as lines:
        for number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as err:
                raise PaperTableError(
                    f"{path}:{number}: not valid JSON ({err.msg}); expected one JSON object per line"
                ) from None
            ok = isinstance(record, dict) and all(
                isinstance(record.get(k), (int, float)) and not isinstance(record.get(k), bool)
                for k in ("seconds", "step")
            )
            if not ok:
                raise PaperTableError(
                    f"{path}:{number}: expected a record with numeric 'seconds' and 'step', found {line.strip()[:200]!r}"
                )
            last = record
    if last is None:
        raise PaperTableError(f"{path}: no records; expected one JSON object per evaluation")
    steps = int(last["step"]) + 1
    return {"wall_s": float(last["seconds"]), "steps": steps, "s_per_step": float(last["seconds"]) / steps}


def summarize(values: Sequence[float]) -> Dict[str, Any]:
    """Mean and sample standard deviation (n - 1; None for one value)."""
    return {
        "mean": statistics.fmean(values),
        "sd": statistics.stdev(values) if len(values) > 1 else None,
    }


def compare(a: Sequence[float], b: Sequence[float]) -> Dict[str, Any]:
    """mean(a) - mean(b), the pooled standard deviation of the two groups, and
    whether a beats b by more than two pooled SDs (None when the pooled SD is
    undefined: one run on each side).
    """
    dof = len(a) + len(b) - 2
    pooled: Optional[float] = None
    if dof > 0:
        ss = sum((len(x) - 1) * statistics.variance(x) for x in (a, b) if len(x) > 1)
        pooled = math.sqrt(ss / dof)
    diff = statistics.fmean(a) - statistics.fmean(b)
    return {
        "n_a": len(a),
        "n_b": len(b),
        "diff": diff,
        "pooled_sd": pooled,
        "exceeds_two_sd": None if pooled is None else diff > 2 * pooled,
    }


def _cell(runs: List[Run], teacher_f: Optional[float], variant: str, corpus: str) -> Dict[str, Any]:
    paper = PAPER.get(base_corpus(corpus)) if variant == PAPER_VARIANT else None
    cell: Dict[str, Any] = {
        "n": len(runs),
        "status": "ok" if runs else NOT_RUN,
        "seeds": [run.seed for run in runs],
        "files": [str(run.path) for run in runs],
        "paper_f": paper["f"] if paper else None,
        "paper_gap": paper["gap"] if paper else None,
    }
    for key in ("p", "r", "f"):
        cell[key] = summarize([run.prf[key] for run in runs]) if runs else None
    is_student = variant != TEACHER
    cell["gap"] = cell["f"]["mean"] - teacher_f if runs and is_student and teacher_f is not None else None
    return cell


def int8_base(variant: str, variants: Iterable[str]) -> Optional[Tuple[str, str]]:
    """(fp32 variant, form) when `variant` is an int8 form of another of the
    variants, e.g. "student-dynamic-onnx-int8" -> ("student-dynamic", "onnx-int8")."""
    for form in sorted(INT8_FORMS, key=len, reverse=True):
        base = variant[: -len(form) - 1]
        if variant.endswith(f"-{form}") and base in variants and base != TEACHER:
            return base, form
    return None


def _int8_change(runs: Dict[str, List[Run]], variant: str, base: str, form: str) -> Dict[str, Any]:
    """The int8 form's F minus its fp32 student's, paired by seed."""
    fp32 = {run.seed: run.prf["f"] for run in runs.get(base, [])}
    changes = [run.prf["f"] - fp32[run.seed] for run in runs.get(variant, []) if run.seed in fp32]
    return {
        "variant": variant,
        "base": base,
        "form": form,
        "description": INT8_FORMS[form],
        "seeds": [run.seed for run in runs.get(variant, []) if run.seed in fp32],
        "change": summarize(changes) if changes else None,
    }


def _comparison(runs: Dict[str, List[Run]], a: str, b: str) -> Dict[str, Any]:
    row: Dict[str, Any] = {"a": a, "b": b}
    if runs.get(a) and runs.get(b):
        row.update(compare([r.prf["f"] for r in runs[a]], [r.prf["f"] for r in runs[b]]))
        row["status"] = "ok"
    else:
        row.update(n_a=len(runs.get(a, [])), n_b=len(runs.get(b, [])), diff=None, pooled_sd=None, exceeds_two_sd=None)
        row["status"] = NOT_RUN
    return row


def _per_type(runs: Dict[str, List[Run]], variants: Iterable[str]) -> Dict[str, Dict[str, Any]]:
    table: Dict[str, Dict[str, Any]] = {}
    for variant in variants:
        labels = sorted({label for run in runs.get(variant, []) for label in run.per_type})
        table[variant] = {}
        for label in labels:
            typed = [run.per_type[label] for run in runs[variant] if label in run.per_type]
            table[variant][label] = {"n": len(typed), **{k: summarize([t[k] for t in typed]) for k in "prf"}}
    return table


def _timing(corpus: str, runs: Dict[str, List[Run]], variants: Iterable[str], training_dir: Path) -> Dict[str, Any]:
    timing: Dict[str, Any] = {}
    for variant in variants:
        if variant == TEACHER:
            continue  # `spacy train` writes no distill_log.jsonl
        logs: List[Dict[str, Any]] = []
        for run in runs.get(variant, []):
            name = variant if run.seed is None else f"{variant}-seed{run.seed}"
            path = training_dir / corpus / name / LOG_FILE
            if path.is_file():
                logs.append({"seed": run.seed, "path": str(path), **read_distill_log(path)})
        timing[variant] = {
            "n": len(logs),
            "runs": logs,
            "wall_s": summarize([log["wall_s"] for log in logs]) if logs else None,
            "s_per_step": summarize([log["s_per_step"] for log in logs]) if logs else None,
        }
    return timing


def find_runs(corpus_dir: Path, skipped: List[Dict[str, str]]) -> Dict[str, List[Run]]:
    """Read the runs under `metrics/<corpus>/`, by variant, sorted by seed;
    files that are not runs of the table are added to `skipped` with the reason."""
    runs: Dict[str, List[Run]] = {}
    for path in sorted(corpus_dir.glob("*.json")):
        variant, seed, reason = parse_run_name(path.stem)
        if variant is None:
            skipped.append({"file": str(path), "reason": reason})
            continue
        runs.setdefault(variant, []).append(read_run(path, seed))
    for variant_runs in runs.values():
        variant_runs.sort(key=lambda run: -1 if run.seed is None else run.seed)
    return runs


def gather_paper_table(
    metrics_dir: Path,
    *,
    training_dir: Optional[Path] = None,
    corpora: Sequence[str] = CORPORA,
) -> Dict[str, Any]:
    """Gather the metrics of every corpus into the paper's table.

    metrics_dir (Path): The folder with one subfolder of metrics files per corpus.
    training_dir (Optional[Path]): The folder of the trained models; when given,
        each student run's `training/<corpus>/<variant>-seed<k>/distill_log.jsonl`
        gives its wall seconds and seconds per step.
    corpora (Sequence[str]): The corpora, in the table's order.
    RETURNS (Dict[str, Any]): The table: per corpus its cells by variant, KD
        against no KD, schedules against constant weights, per-type scores and
        timings; the paper's figures; the files skipped and why.
    """
    metrics_dir = Path(metrics_dir)
    if not metrics_dir.is_dir():
        raise PaperTableError(
            f"{metrics_dir}: no such folder; expected metrics/<corpus>/*.json from `spacy evaluate --output`"
        )
    skipped: List[Dict[str, str]] = [
        {"file": str(path), "reason": f"not one of the table's corpora ({', '.join(corpora)})"}
        for path in sorted(metrics_dir.iterdir())
        if path.is_dir() and path.name not in corpora
    ]
    table: Dict[str, Any] = {}
    for corpus in corpora:
        corpus_dir = metrics_dir / corpus
        runs = find_runs(corpus_dir, skipped) if corpus_dir.is_dir() else {}
        extra = sorted(set(runs) - set(VARIANTS))
        variants = [*VARIANTS, *extra]
        teacher_f = statistics.fmean(r.prf["f"] for r in runs[TEACHER]) if runs.get(TEACHER) else None
        forms = {v: base for v in variants if (base := int8_base(v, variants)) is not None}
        kd_variants = [v for v in variants if v not in (TEACHER, NO_KD) and v not in forms]
        entry: Dict[str, Any] = {
            "status": "ok" if runs else NOT_RUN,
            "variants": {v: _cell(runs.get(v, []), teacher_f, v, corpus) for v in variants},
            "kd_vs_nokd": [_comparison(runs, v, NO_KD) for v in kd_variants],
            "schedules_vs_constant": [_comparison(runs, v, CONSTANT) for v in kd_variants if v != CONSTANT],
            "int8": [_int8_change(runs, v, base, form) for v, (base, form) in forms.items()],
        }
        if corpus in PER_TYPE_CORPORA:
            entry["per_type"] = _per_type(runs, variants)
        if training_dir is not None:
            entry["timing"] = _timing(corpus, runs, [v for v in variants if v not in forms], Path(training_dir))
        table[corpus] = entry
    return {
        "metrics_dir": str(metrics_dir),
        "training_dir": None if training_dir is None else str(training_dir),
        "units": "percent; sd is the sample standard deviation (n - 1), null for one run",
        "corpora": table,
        "paper": {corpus: dict(figures) for corpus, figures in PAPER.items()},
        "skipped": skipped,
    }


def write_paper_table(table: Dict[str, Any], output_dir: Path) -> Tuple[Path, Path]:
    """Write `paper-table.md` and `paper-table.json` to `output_dir`.

    RETURNS (Tuple[Path, Path]): The two files.
    """
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    md_path, json_path = output_dir / MD_FILE, output_dir / JSON_FILE
    md_path.write_text(render_markdown(table), encoding="utf8")
    srsly.write_json(json_path, table)
    return md_path, json_path


def keep_earlier_corpora(table: Dict[str, Any], earlier: Dict[str, Any]) -> List[str]:
    """Fill the corpora that have no runs here from an earlier table, marked with
    "kept": the earlier table's rows stay until their runs are gathered again.

    table (Dict[str, Any]): `gather_paper_table`'s output, changed in place.
    earlier (Dict[str, Any]): The earlier paper-table.json.
    RETURNS (List[str]): The corpora kept.
    """
    kept = []
    for corpus, entry in table["corpora"].items():
        old = earlier.get("corpora", {}).get(corpus)
        if entry["status"] == NOT_RUN and old and old.get("status") != NOT_RUN:
            table["corpora"][corpus] = {**old, "kept": True}
            kept.append(corpus)
    return kept


def main(
    # fmt: off
    metrics_dir: Path = typer.Argument(
        ...,
        help="Folder of `spacy evaluate --output` files: <corpus>/teacher.json, <corpus>/student-<variant>-seed<k>.json",
        exists=True,
        file_okay=False,
    ),
    output_dir: Path = typer.Option(
        Path("results"), "--output", "-o", help="Output folder for paper-table.md and paper-table.json", file_okay=False
    ),
    training_dir: Optional[Path] = typer.Option(
        None,
        "--training",
        "-t",
        help="Folder of the trained students, to read each run's <corpus>/<variant>-seed<k>/distill_log.jsonl (wall seconds, seconds per step)",
        exists=True,
        file_okay=False,
    ),
    corpora: str = typer.Option(
        ",".join(CORPORA), "--corpora", "-c", help="Comma-separated corpora, in the table's order"
    ),
    keep: bool = typer.Option(
        True,
        "--keep/--no-keep",
        help="Keep the corpora that have no runs in METRICS_DIR from the earlier paper-table.json (runs made on another machine)",
    ),
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
    previous = output_dir / JSON_FILE
    if keep and previous.is_file():
        for corpus in keep_earlier_corpora(table, json.loads(previous.read_text(encoding="utf8"))):
            msg.info(f"{corpus}: no runs in {metrics_dir}; kept from the earlier {previous}")
    md_path, json_path = write_paper_table(table, output_dir)
    for corpus, entry in table["corpora"].items():
        ran = {variant: cell["n"] for variant, cell in entry["variants"].items() if cell["n"]}
        summary = ", ".join(f"{variant} x{n}" for variant, n in ran.items()) or "not run"
        msg.text(f"{corpus}: {summary}")
    for item in table["skipped"]:
        msg.warn(f"Skipped {item['file']}: {item['reason']}")
    msg.good(f"Saved {md_path} and {json_path}")


if __name__ == "__main__":
    typer.run(main)
