"""The paper's table as Markdown, rendered from the dict that
`paper_table.gather_paper_table` builds (and writes as JSON), and from nothing
else: every figure in the Markdown is in the JSON."""

from typing import Any, Dict, List, Optional, Sequence

NOT_RUN = "not run"
NONE = "—"
MINUS = "−"


def format_value(value: Optional[float], digits: int = 2, *, signed: bool = False) -> str:
    """A figure with `digits` decimals ("—" for None); signed figures carry
    "+" or the typographic minus, as the README writes gaps."""
    if value is None:
        return NONE
    text = f"{value:+.{digits}f}" if signed else f"{value:.{digits}f}"
    return text.replace("-", MINUS)


def format_summary(summary: Optional[Dict[str, Any]], digits: int = 2) -> str:
    """ "mean ± sd" ("mean ± —" for one run, "not run" for none)."""
    if summary is None:
        return NOT_RUN
    return f"{format_value(summary['mean'], digits)} ± {format_value(summary['sd'], digits)}"


def _yes_no(value: Optional[bool]) -> str:
    return NONE if value is None else ("yes" if value else "no")


def _table(header: Sequence[str], rows: List[List[str]]) -> List[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return lines + [""]


def _score_rows(corpora: Dict[str, Any]) -> List[List[str]]:
    rows = []
    for corpus, entry in corpora.items():
        for variant, cell in entry["variants"].items():
            rows.append(
                [
                    corpus,
                    variant,
                    str(cell["n"]) if cell["n"] else NOT_RUN,
                    *(format_summary(cell[key]) for key in ("p", "r", "f")),
                    format_value(cell["gap"], signed=True) if cell["n"] else NOT_RUN,
                    format_value(cell["paper_f"]),
                    format_value(cell["paper_gap"], signed=True),
                ]
            )
    return rows


def _comparison_rows(corpora: Dict[str, Any], key: str) -> List[List[str]]:
    rows = []
    for corpus, entry in corpora.items():
        variants = entry["variants"]
        for row in entry[key]:
            a, b = variants[row["a"]], variants[row["b"]]
            ran = row["status"] != NOT_RUN
            rows.append(
                [
                    corpus,
                    row["a"],
                    f"{format_summary(a['f'])} (n={a['n']})",
                    f"{format_summary(b['f'])} (n={b['n']})",
                    format_value(row["diff"], signed=True) if ran else NOT_RUN,
                    format_value(row["pooled_sd"]) if ran else NOT_RUN,
                    _yes_no(row["exceeds_two_sd"]) if ran else NOT_RUN,
                ]
            )
    return rows


def _int8_lines(corpora: Dict[str, Any]) -> List[str]:
    rows = []
    for corpus, entry in corpora.items():
        for row in entry.get("int8", []):
            cell = entry["variants"][row["variant"]]
            rows.append(
                [
                    corpus,
                    row["variant"],
                    row["description"],
                    str(len(row["seeds"])),
                    format_summary(cell["f"]),
                    format_summary(row["change"]) if row["change"] else NOT_RUN,
                ]
            )
    if not rows:
        return []
    return [
        "## int8 forms against their fp32 student",
        "",
        "Each int8 form's test F minus the F of the fp32 student of the same seed (mean ± sample SD over seeds).",
        "",
    ] + _table(("corpus", "model", "form", "seeds", "F", "change against fp32"), rows)


def _per_type_lines(corpus: str, per_type: Dict[str, Dict[str, Any]]) -> List[str]:
    rows = []
    for variant, labels in per_type.items():
        if not labels:
            rows.append([variant, NONE, NOT_RUN, NOT_RUN, NOT_RUN, NOT_RUN])
        for label, scores in labels.items():
            rows.append([variant, label, str(scores["n"]), *(format_summary(scores[k]) for k in "prf")])
    return [f"## Per type: {corpus}", ""] + _table(("model", "type", "seeds", "P", "R", "F"), rows)


def _timing_lines(corpora: Dict[str, Any]) -> List[str]:
    rows = []
    for corpus, entry in corpora.items():
        for variant, timing in entry.get("timing", {}).items():
            if not entry["variants"][variant]["n"]:
                continue  # "not run" in the scores table already
            if timing["n"]:
                rows.append(
                    [
                        corpus,
                        variant,
                        str(timing["n"]),
                        format_summary(timing["wall_s"], 0),
                        format_summary(timing["s_per_step"], 3),
                    ]
                )
            else:
                rows.append([corpus, variant, "0", "no log", "no log"])
    return [
        "## Training time",
        "",
        "Wall seconds of each distillation (dev evaluations included) and seconds per step, from the last",
        "record of its `distill_log.jsonl` (mean ± sample SD over the runs that have a log).",
        "",
    ] + _table(("corpus", "model", "runs", "wall s", "s/step"), rows)


def render_markdown(table: Dict[str, Any]) -> str:
    """Render the table built by `gather_paper_table` as Markdown.

    table (Dict[str, Any]): The table, as written to paper-table.json.
    RETURNS (str): The Markdown text.
    """
    # Adapted-teacher and release corpora appear once they have runs.
    corpora = {
        corpus: entry
        for corpus, entry in table["corpora"].items()
        if entry["status"] != NOT_RUN or not corpus.endswith(("-adapted", "-release"))
    }
    lines = [
        "# The paper table",
        "",
        f"Test-set precision, recall and F1 (%) from the `spacy evaluate --output` files in "
        f"`{table['metrics_dir']}`: mean ± sample standard deviation over seeds (n − 1; {NONE} for one run). "
        "Gap: the student's mean F minus its teacher's. Paper: FastBioNER's dynamic-KD student "
        f'(BioBERT teacher, 12 → 6 layers) and its gap. "{NOT_RUN}": no metrics file. A corpus '
        '"<corpus>-adapted" is the same corpus with a domain-adapted teacher (`adapt-encoder`); '
        '"<corpus>-release": the release models, trained on train + dev with the steps chosen on dev.',
        "",
    ]
    kept = [corpus for corpus, entry in corpora.items() if entry.get("kept")]
    if kept:
        lines += [
            f"Kept from the earlier table, whose runs were not on the machine that gathered this one: {', '.join(kept)}.",
            "",
        ]
    lines += [
        "## Test scores",
        "",
    ]
    lines += _table(
        ("corpus", "model", "seeds", "P", "R", "F", "gap to teacher", "paper F", "paper gap"), _score_rows(corpora)
    )
    header = ("corpus", "student", "F", "{} F", "difference", "pooled SD", "difference > 2 pooled SD")
    lines += ["## KD against no KD", ""]
    lines += _table([h.format("no-KD") for h in header], _comparison_rows(corpora, "kd_vs_nokd"))
    lines += ["## Schedules against constant weights", ""]
    lines += _table([h.format("constant") for h in header], _comparison_rows(corpora, "schedules_vs_constant"))
    lines += _int8_lines(corpora)
    for corpus, entry in corpora.items():
        if "per_type" in entry:
            lines += _per_type_lines(corpus, entry["per_type"])
    if table.get("training_dir") is not None:
        lines += _timing_lines(corpora)
    if table["skipped"]:
        lines += ["## Files not in the table", ""]
        lines += [f"- `{item['file']}`: {item['reason']}" for item in table["skipped"]] + [""]
    return "\n".join(lines)
