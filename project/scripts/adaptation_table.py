"""Teachers with and without domain-adaptive pretraining, side by side: test
P/R/F (mean ± sample SD over seeds) from `spacy evaluate --output` files named
<corpus>/<teacher>-seed<k>.json, and the adaptation's held-out perplexity.

Usage: python project/scripts/adaptation_table.py METRICS_DIR ADAPTED_ENCODER_DIR --output results/adaptation \
    [--training training]

A corpus of the earlier output that METRICS_DIR no longer holds (its runs were
made on another machine) is kept, marked as kept. With --training, each run's
budget (steps, peak learning rate, warm-up) is read from its config.cfg.
"""

import json
import re
import statistics
from pathlib import Path
from typing import Dict, List, Optional

import typer

TEACHERS = {"teacher-minilm": "MiniLM-L6 as shipped", "teacher-adapted": "MiniLM-L6 adapted (adapt-encoder)"}


def gather(metrics_dir: Path, training_dir: Optional[Path] = None) -> Dict[str, Dict[str, Dict[str, object]]]:
    table: Dict[str, Dict[str, Dict[str, object]]] = {}
    for corpus_dir in sorted(p for p in metrics_dir.iterdir() if p.is_dir()):
        for teacher in TEACHERS:
            runs = {}
            for path in sorted(corpus_dir.glob(f"{teacher}-seed*.json")):
                seed = int(re.search(r"seed(\d+)", path.name).group(1))  # type: ignore[union-attr]
                scores = json.loads(path.read_text(encoding="utf8"))
                runs[seed] = {k: 100 * scores[k] for k in ("ents_p", "ents_r", "ents_f")}
                budget = _budget(training_dir / corpus_dir.name / path.stem) if training_dir else None
                if budget:
                    runs[seed]["budget"] = budget
            if runs:
                table.setdefault(corpus_dir.name, {})[teacher] = {"runs": runs, **_summary(list(runs.values()))}
    return table


def _budget(run_dir: Path) -> Optional[Dict[str, object]]:
    """Steps, peak rate and warm-up of a `fastbioner train` run, from its config."""
    from spacy.util import load_config

    path = run_dir / "model-best" / "config.cfg"
    if not path.exists():
        return None
    schedule = load_config(path, interpolate=False)["training"]["optimizer"]["learn_rate"]
    return {k: schedule[k] for k in ("total_steps", "initial_rate", "warmup_steps")}


def _summary(runs: List[Dict[str, float]]) -> Dict[str, object]:
    out: Dict[str, object] = {"n": len(runs)}
    for key in ("ents_p", "ents_r", "ents_f"):
        values = [r[key] for r in runs]
        out[key] = statistics.mean(values)
        out[key + "_sd"] = statistics.stdev(values) if len(values) > 1 else None
    return out


def _budget_text(row: Dict[str, object]) -> str:
    budgets = {json.dumps(r.get("budget"), sort_keys=True) for r in row["runs"].values()}  # type: ignore[attr-defined]
    if len(budgets) != 1 or budgets == {"null"}:
        return "—"
    b = json.loads(budgets.pop())
    return f"{b['total_steps']:,} steps, rate {b['initial_rate']:g}, warm-up {b['warmup_steps']}"


def main(
    metrics_dir: Path,
    adapted: Path,
    output: Path = typer.Option(Path("results/adaptation"), "--output"),
    training: Optional[Path] = typer.Option(None, "--training", help="Training folder: each run's budget"),
    keep: bool = typer.Option(True, "--keep/--no-keep", help="Keep corpora of the earlier output absent here"),
):
    table = gather(metrics_dir, training)
    kept = []
    kept_adaptation = None
    earlier = output.with_suffix(".json")
    if keep and earlier.exists():
        before = json.loads(earlier.read_text(encoding="utf8"))
        for corpus, rows in before["teachers"].items():
            if corpus not in table:
                table[corpus] = rows
                kept.append(corpus)
        if kept:
            # The kept teachers were adapted by an earlier run of adapt-encoder, not this one.
            kept_adaptation = before.get("adaptation_of_kept") or before["adaptation"]
    table = dict(sorted(table.items()))
    report = json.loads((adapted / "adaptation.json").read_text(encoding="utf8"))
    output.parent.mkdir(parents=True, exist_ok=True)
    data = {
        "teachers": table,
        "kept": kept,
        "adaptation_of_kept": kept_adaptation,
        "adaptation": {
            k: report[k] for k in ("settings", "steps", "complete", "epochs", "heldout_perplexity", "train_blocks")
        },
    }
    data["adaptation"]["wordpieces_per_word"] = report["tokenization"]["wordpieces_per_word"]
    output.with_suffix(".json").write_text(json.dumps(data, indent=2) + "\n", encoding="utf8")
    sd = lambda v: "—" if v is None else f"{v:.2f}"  # noqa: E731
    lines = [
        "# Teachers with and without domain-adaptive pretraining",
        "",
        "Test P/R/F (%), mean ± sample SD over seeds; the same training budget for both teachers of a corpus, "
        "the final checkpoint chosen on the whole dev set.",
        "",
        *([f"Kept from the earlier table (runs made on another machine): {', '.join(kept)}.", ""] if kept else []),
        "| corpus | teacher | budget | seeds | P | R | F | F of each seed |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for corpus, rows in table.items():
        for teacher, row in rows.items():
            seeds = ", ".join(f"{s}: {r['ents_f']:.2f}" for s, r in sorted(row["runs"].items()))  # type: ignore[union-attr]
            lines.append(
                f"| {corpus} | {TEACHERS[teacher]} | {_budget_text(row)} | {row['n']} | {row['ents_p']:.2f} ± {sd(row['ents_p_sd'])} | "
                f"{row['ents_r']:.2f} ± {sd(row['ents_r_sd'])} | {row['ents_f']:.2f} ± {sd(row['ents_f_sd'])} | {seeds} |"
            )
    gains = [
        f"{corpus} {rows['teacher-adapted']['ents_f'] - rows['teacher-minilm']['ents_f']:+.2f} "
        f"({rows['teacher-minilm']['n']} and {rows['teacher-adapted']['n']} seeds)"
        for corpus, rows in table.items()
        if {"teacher-minilm", "teacher-adapted"} <= set(rows)
    ]
    if gains:
        lines += ["", f"Adapted minus as shipped, mean test F: {'; '.join(gains)}."]
    ppl = report["heldout_perplexity"]
    lines += [
        "",
        f"Adaptation: {report['steps']} steps of {report['settings']['batch_size']} blocks of "
        f"{report['settings']['max_length']} wordpieces ({report['epochs']:.2f} epochs of the unlabelled abstracts), "
        f"learning rate {report['settings']['learn_rate']}, the new MLM head trained alone for the first "
        f"{report['settings']['head_warmup_steps']} steps. Held-out perplexity (whole-word masking, "
        f"{report['heldout_docs']} held-out abstracts): {ppl['fresh_head']:,.0f} with the fresh head, "
        f"{ppl['head_warmed_up']:,.1f} after the head's warm-up (the encoder as shipped), "
        f"{ppl['final']:,.1f} after adaptation.",
        "",
    ]
    if kept_adaptation:
        lines += [
            f"The adapted teachers of {', '.join(kept)} used an earlier run of the same adaptation "
            f"({kept_adaptation['steps']} steps, held-out perplexity "
            f"{kept_adaptation['heldout_perplexity']['final']:,.1f}).",
            "",
        ]
    output.with_suffix(".md").write_text("\n".join(lines), encoding="utf8")
    print("\n".join(lines))


if __name__ == "__main__":
    typer.run(main)
