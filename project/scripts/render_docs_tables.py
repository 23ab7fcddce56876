"""Render the tables of the README and docs/ from the committed result files,
so that no figure is typed twice.

A Markdown file holds a rendered block between two markers:

    <!-- render: paper-table -->
    ...the table, written by this script...
    <!-- end render -->

`python project/scripts/render_docs_tables.py README.md docs/*.md` rewrites
every block from `results/`; `--check` changes nothing and fails, naming the
file and block, where a block is not what the results give (`make docs` runs
it). The blocks:

- `readme-results`: the README's table (test F of each corpus's teacher,
  dynamic-KD student and its int8 forms, with the seeds), dated by the commit
  of the results file;
- `paper-table`: `results/paper-table.md`, the paper table as
  `spacy project run gather-paper-table .` wrote it, its headings moved a
  level down;
- `paper-seeds`: the seeds of every model of the paper table;
- `speed`: words/s and F of every form on NCBI-disease test, one row group per CPU class,
  from the committed `results/benchmarks/<cpu class>/ncbi-test/benchmark.json`
  (`logs`-free: the command is `project/scripts/cpu_class_benchmark.sh`);
- `linking`: the linker's scores on the raw dev sets, from
  `results/linking/<name>.json` (`spacy project run evaluate-linking .`);
- `abbreviations`: F on raw dev abstracts with and without document-level
  consistency (`results/abbreviations.json`);
- `int8-static-study`: dev F of the static int8 variants
  (`project/scripts/static_int8_study.py`);
- `adaptation`: `results/adaptation.md`, the teachers with and without domain
  adaptation (`spacy project run adaptation-table .`), without its title.
"""

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any, Callable, Dict, List, Sequence

import typer

sys.path.insert(0, str(Path(__file__).parent))
from paper_table_md import format_summary, format_value  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
PAPER_JSON = Path("results/paper-table.json")
PAPER_MD = Path("results/paper-table.md")
MADE_BY = "`spacy project run gather-paper-table .`"
BLOCK = re.compile(r"(<!-- render: ([a-z0-9-]+) -->\n)(.*?)(<!-- end render -->)", re.DOTALL)
# The README's rows: the variant of the paper table and its name there.
README_VARIANTS = {
    "teacher": "teacher (MiniLM-L6)",
    "student-dynamic": "student, dynamic KD (half the layers)",
    "student-dynamic-onnx-int8-smooth": "fast student, ONNX Runtime int8, smoothed",
    "student-dynamic-openvino-int8-packed": "fast student, OpenVINO static int8, packed",
    "student-dynamic-auto": "fast student, `export --runtime auto`",
}


def _table(header: Sequence[str], rows: List[List[str]]) -> List[str]:
    return ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)] + [
        "| " + " | ".join(row) + " |" for row in rows
    ]


def _seeds(cell: Dict[str, Any]) -> str:
    seeds = [str(s) for s in cell.get("seeds") or [] if s is not None]
    return ", ".join(seeds) if seeds else "—"


def _last_commit(path: Path) -> str:
    """RETURNS (str): "DATE, commit HASH" of the last commit that changed `path`."""
    try:
        out = subprocess.run(
            ["git", "log", "-1", "--format=%ad, commit %h", "--date=short", "--", str(path)],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError) as err:
        raise SystemExit(f"{path}: cannot read its last commit from git: {err}") from None
    if not out:
        raise SystemExit(f"{path}: not committed, so its figures cannot be dated: commit it first")
    return out


def _paper_table() -> Dict[str, Any]:
    return json.loads((ROOT / PAPER_JSON).read_text(encoding="utf8"))


def render_readme_results() -> str:
    """RETURNS (str): The README's results table, from results/paper-table.json."""
    table = _paper_table()
    rows = []
    for corpus, entry in table["corpora"].items():
        for variant, name in README_VARIANTS.items():
            cell = entry["variants"].get(variant)
            if not cell or not cell["n"]:
                continue
            paper = (
                f"{format_value(cell['paper_f'])} / {format_value(cell['paper_gap'], signed=True)}"
                if cell["paper_f"] is not None
                else ""
            )
            rows.append(
                [
                    corpus,
                    name,
                    format_summary(cell["f"]),
                    _seeds(cell) if variant != "teacher" else "—",
                    format_value(cell["gap"], signed=True),
                    paper,
                ]
            )
    header = ["corpus", "model", "test F (mean ± SD)", "seeds", "gap to teacher", "FastBioNER F / gap (BioBERT)"]
    lines = _table(header, rows)
    kept = [corpus for corpus, entry in table["corpora"].items() if entry.get("kept")]
    lines += [
        "",
        f"From `{PAPER_JSON}` ({_last_commit(PAPER_JSON)}), made by {MADE_BY}; every row and the other "
        "students are in [the results page](docs/results.md)."
        + (f" The rows of {', '.join(kept)} are kept from an earlier gather." if kept else ""),
    ]
    return "\n".join(lines) + "\n"


def render_paper_table() -> str:
    """RETURNS (str): results/paper-table.md without its title, headings a level down."""
    text = (ROOT / PAPER_MD).read_text(encoding="utf8")
    lines = [line for line in text.splitlines() if not line.startswith("# ")]
    lines = ["#" + line if line.startswith("## ") else line for line in lines]
    body = "\n".join(lines).strip()
    return f"From `{PAPER_MD}` ({_last_commit(PAPER_MD)}), made by {MADE_BY}.\n\n{body}\n"


def render_paper_seeds() -> str:
    """RETURNS (str): The seeds of every model of the paper table."""
    rows = []
    for corpus, entry in _paper_table()["corpora"].items():
        for variant, cell in entry["variants"].items():
            rows.append([corpus, variant, str(cell["n"]), _seeds(cell) if cell["n"] else "not run"])
    return "\n".join(_table(["corpus", "model", "runs", "seeds"], rows)) + "\n"


# The linker's evaluations: file stem -> the dev set it scores.
LINKING = {
    "ncbi-disease": "NCBI-disease",
    "bc5cdr-chemical": "BC5CDR chemicals",
    "bc5cdr-disease": "BC5CDR diseases",
}


def render_linking() -> str:
    """RETURNS (str): The linker's doc-level concept scores (gold spans, a KB of the corpus's
    training file), beside the exact-match baseline and the ceiling, with mention-level figures."""
    rows = []
    for stem, name in LINKING.items():
        data = json.loads((ROOT / "results" / "linking" / f"{stem}.json").read_text(encoding="utf8"))
        doc, mention, unseen = data["doc_level"], data["mention_level"], data["unseen_concepts"]
        linker = doc["linker"]
        rows.append(
            [
                name,
                f"{unseen['n_pairs']:,}",
                f"{100 - 100 * unseen['n_unseen_pairs'] / unseen['n_pairs']:.1f}%",
                f"{doc['ceiling']['f']:.1f}",
                f"{doc['baseline']['f']:.1f}",
                f"{linker['p']:.1f} / {linker['r']:.1f} / **{linker['f']:.1f}**",
                f"{mention['accuracy_at_1_in_kb']:.1f}",
                f"{mention['recall_at_10_in_kb']:.1f}",
            ]
        )
    header = [
        "dev set",
        "pairs",
        "in the train KB",
        "best F possible",
        "exact-match F",
        "linker P / R / F",
        "acc@1 (in KB)",
        "recall@10 (in KB)",
    ]
    files = ", ".join(f"`results/linking/{stem}.json`" for stem in LINKING)
    dates = sorted({_last_commit(Path("results/linking") / f"{stem}.json") for stem in LINKING})
    return "\n".join(_table(header, rows)) + f"\n\nFrom {files} ({'; '.join(dates)}), each with its command.\n"


ADAPTATION_MD = Path("results/adaptation.md")


def render_adaptation() -> str:
    """RETURNS (str): results/adaptation.md without its title."""
    text = (ROOT / ADAPTATION_MD).read_text(encoding="utf8")
    body = "\n".join(line for line in text.splitlines() if not line.startswith("# ")).strip()
    made_by = "`spacy project run adaptation-table .`"
    return f"From `{ADAPTATION_MD}` ({_last_commit(ADAPTATION_MD)}), made by {made_by}.\n\n{body}\n"


ABBREVIATIONS = Path("results/abbreviations.json")


def render_abbreviations() -> str:
    """RETURNS (str): F on raw dev abstracts with `fastbioner_abbreviations` off and on, per model."""
    data = json.loads((ROOT / ABBREVIATIONS).read_text(encoding="utf8"))
    entries = [data] + [value for value in data.values() if isinstance(value, dict) and "runs" in value]
    rows = []
    for entry in entries:
        off, on = entry["runs"]["no-abbreviations"], entry["runs"]["abbreviations"]
        cells = [f"{100 * r['ents_p']:.2f} / {100 * r['ents_r']:.2f} / {100 * r['ents_f']:.2f}" for r in (off, on)]
        gain = f"{100 * (on['ents_f'] - off['ents_f']):+.2f}"
        what = entry.get("what", data["what"]).split("raw ")[1].split(" (")[0]
        rows.append([what, f"`{entry['model'].split(' (')[0]}`", *cells, gain])
    header = ["raw dev abstracts", "model", "off: P / R / F", "on: P / R / F", "F gain"]
    note = f"From `{ABBREVIATIONS}` ({_last_commit(ABBREVIATIONS)}), with the commands of each row."
    return "\n".join(_table(header, rows)) + f"\n\n{note}\n"


INT8_STUDY = Path("results/int8-static-study.json")


def render_int8_static_study() -> str:
    """RETURNS (str): Dev F of each static int8 variant beside the fp32 pipeline."""
    data = json.loads((ROOT / INT8_STUDY).read_text(encoding="utf8"))
    fp32 = data["rows"][0]["f"]
    rows = [
        [row["variant"], f"{row['f']:.2f}", f"{row['f'] - fp32:+.2f}" if i else "—"]
        for i, row in enumerate(data["rows"])
    ]
    note = (
        f"From `{INT8_STUDY}` ({_last_commit(INT8_STUDY)}): {data['dev_docs']:,} dev sentences, "
        f"a CPU of class {data['cpu_class']}; `{data['command']}`."
    )
    return "\n".join(_table(["form", "dev F", "vs fp32"], rows)) + f"\n\n{note}\n"


BENCHMARKS = Path("results/benchmarks")
CPU_CLASSES = {"avx2": "AVX2 only", "avx512-vnni": "AVX-512 with VNNI", "arm-dotprod": "ARM with dot-product"}


def render_speed_summary() -> str:
    """RETURNS (str): The README's speed rows: per CPU class, at one thread, the teacher, the fp32
    student and the fast student (`export --runtime auto`'s choice there)."""
    return render_speed(models=("teacher", "student", "auto"), threads=1)


def render_speed(models: Sequence[str] = (), threads: int = 0) -> str:
    """RETURNS (str): One row group per CPU class with a committed NCBI-disease test benchmark:
    each form's test F, words/s and ratio to the teacher at each thread count (only `models`
    and `threads` when given)."""
    from spacy_fastbioner.benchmark.cpu import describe_cpu

    files = sorted((ROOT / BENCHMARKS).glob("*/ncbi-test/benchmark.json"))
    if not files:
        return "No benchmark file committed yet (`results/benchmarks/<cpu class>/ncbi-test/benchmark.json`).\n"
    rows, notes = [], []
    for path in files:
        cpu_class = path.parent.parent.name
        results = json.loads(path.read_text(encoding="utf8"))
        reference = results["settings"]["reference"]
        for model in results["models"]:
            n_threads = model.get("threads") or results["environment"]["torch_threads"]
            name = re.sub(r" \(\d+t\)$", "", model["name"])  # a merged run's rows end with their threads
            if (models and name not in models) or (threads and n_threads != threads):
                continue
            speed, accuracy = model["speed"], model.get("accuracy") or {}
            rows.append(
                [
                    CPU_CLASSES.get(cpu_class, cpu_class),
                    model["name"],
                    str(n_threads),
                    f"{100 * accuracy['f']:.2f}" if accuracy.get("f") is not None else "—",
                    f"{speed['words_per_sec']['median']:,.0f}",
                    f"{speed['speedup_vs_reference']['median']:.2f}",
                ]
            )
        relative = path.relative_to(ROOT)
        notes.append(
            f"{CPU_CLASSES.get(cpu_class, cpu_class)}: {describe_cpu(results['environment']['cpu'])}; "
            f"`{relative}` ({_last_commit(relative)}); × {reference}; "
            f"`auto`: the form that `export --runtime auto` chose there (`{relative.parent.parent}/export-auto.log`)."
        )
    header = ["CPU class", "model", "threads", "test F", "words/s", "× teacher"]
    return "\n".join(_table(header, rows)) + "\n\n" + "\n".join(f"- {note}" for note in notes) + "\n"


RENDERERS: Dict[str, Callable[[], str]] = {
    "readme-results": render_readme_results,
    "paper-table": render_paper_table,
    "paper-seeds": render_paper_seeds,
    "linking": render_linking,
    "adaptation": render_adaptation,
    "int8-static-study": render_int8_static_study,
    "abbreviations": render_abbreviations,
    "speed": render_speed,
    "speed-summary": render_speed_summary,
}


def render_file(text: str, path: Path) -> str:
    """RETURNS (str): The text with every rendered block made again."""

    def replace(match: "re.Match[str]") -> str:
        name = match.group(2)
        if name not in RENDERERS:
            raise SystemExit(f"{path}: unknown rendered block {name!r}: expected one of {sorted(RENDERERS)}")
        return match.group(1) + RENDERERS[name]() + match.group(4)

    return BLOCK.sub(replace, text)


def main(
    files: List[Path] = typer.Argument(..., help="Markdown files with rendered blocks"),
    check: bool = typer.Option(False, "--check", help="Change nothing; fail where a block is out of date"),
) -> None:
    """Render the tables of README.md and docs/ from results/."""
    stale = []
    for path in files:
        text = path.read_text(encoding="utf8")
        new = render_file(text, path)
        if new == text:
            continue
        if check:
            names = [m.group(2) for m in BLOCK.finditer(text) if m.group(0) not in new]
            stale.append(f"{path}: rendered block(s) {', '.join(names)} out of date")
        else:
            path.write_text(new, encoding="utf8")
            print(f"rendered {path}")
    if stale:
        print("\n".join(stale) + "\nrun: python project/scripts/render_docs_tables.py README.md docs/*.md")
        raise typer.Exit(1)


if __name__ == "__main__":
    typer.run(main)
