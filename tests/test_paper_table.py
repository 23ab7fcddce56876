"""Tests for project/scripts/paper_table.py and
the project's paper-table commands, on synthetic `spacy evaluate --output`
files. Expected figures are computed here with `statistics`, from the values
written, never typed in."""

import json
import math
import random
import re
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Dict, List, Optional

import pytest
import srsly
import typer
from paper_table import (
    BASE_CORPORA,
    CORPORA,
    PAPER,
    PaperTableError,
    gather_paper_table,
    parse_run_name,
    read_distill_log,
    write_paper_table,
)
from paper_table import main as paper_table_main
from typer.testing import CliRunner

import spacy_fastbioner.cli  # noqa: F401  (registers the commands)
from spacy_fastbioner.packaging.package import model_name

REPO = Path(__file__).parent.parent


def write_metrics(
    path: Path, p: float, r: float, f: float, per_type: Optional[Dict[str, Dict[str, float]]] = None
) -> None:
    """A file shaped like `spacy evaluate --output`: fractions, not percentages."""
    data = {"token_acc": 1.0, "token_p": 1.0, "ents_p": p, "ents_r": r, "ents_f": f, "speed": 1234.5}
    data["ents_per_type"] = per_type or {"Disease": {"p": p, "r": r, "f": f}}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2), encoding="utf8")


def random_prf(rng: random.Random, centre: float) -> Dict[str, float]:
    return {key: centre + rng.uniform(-0.02, 0.02) for key in "prf"}


@pytest.fixture
def metrics(tmp_path) -> Dict[str, object]:
    """NCBI-disease: teacher, 3 seeds of dynamic and no-KD, 1 of constant, 2 of
    cosine, plus an old unseeded student.json and a raw-text score; BC5CDR:
    teacher and 1 dynamic seed with two types; the other corpora: nothing."""
    rng = random.Random(7)
    root = tmp_path / "metrics"
    written: Dict[str, List[Dict[str, float]]] = {}

    def add(corpus: str, stem: str, values: Dict[str, float], per_type=None) -> None:
        write_metrics(root / corpus / f"{stem}.json", values["p"], values["r"], values["f"], per_type)
        written.setdefault(f"{corpus}/{re.sub(r'-seed[0-9]+$', '', stem)}", []).append(values)

    add("NCBI-disease", "teacher", random_prf(rng, 0.83))
    for seed in (1, 2, 3):
        add("NCBI-disease", f"student-dynamic-seed{seed}", random_prf(rng, 0.82))
        add("NCBI-disease", f"student-nokd-seed{seed}", random_prf(rng, 0.80))
    add("NCBI-disease", "student-constant-seed1", random_prf(rng, 0.82))
    for seed in (4, 9):
        add("NCBI-disease", f"student-cosine-seed{seed}", random_prf(rng, 0.825))
    write_metrics(root / "NCBI-disease" / "student.json", 0.99, 0.99, 0.99)
    (root / "NCBI-disease" / "raw-teacher.json").write_text('{"ents_f": 0.5}', encoding="utf8")
    types: Dict[str, Dict[str, Dict[str, float]]] = {}
    for stem, centre in (("teacher", 0.86), ("student-dynamic-seed1", 0.85)):
        values = random_prf(rng, centre)
        types[stem] = {label: random_prf(rng, centre) for label in ("Chemical", "Disease")}
        add("BC5CDR", stem, values, types[stem])
    return {"root": root, "written": written, "types": types}


def pct(values: List[Dict[str, float]], key: str) -> List[float]:
    return [100 * v[key] for v in values]


def test_several_seeds_mean_sd_gap(metrics):
    table = gather_paper_table(metrics["root"])
    written = metrics["written"]
    ncbi = table["corpora"]["NCBI-disease"]["variants"]
    teacher_f = statistics.mean(pct(written["NCBI-disease/teacher"], "f"))
    for variant in ("student-dynamic", "student-nokd", "student-cosine"):
        cell = ncbi[variant]
        runs = written[f"NCBI-disease/{variant}"]
        assert cell["n"] == len(runs) and cell["status"] == "ok"
        for key in "prf":
            assert cell[key]["mean"] == pytest.approx(statistics.mean(pct(runs, key)))
            assert cell[key]["sd"] == pytest.approx(statistics.stdev(pct(runs, key)))
        assert cell["gap"] == pytest.approx(statistics.mean(pct(runs, "f")) - teacher_f)
    assert ncbi["student-dynamic"]["seeds"] == [1, 2, 3]
    assert ncbi["student-cosine"]["seeds"] == [4, 9]
    assert ncbi["teacher"]["gap"] is None
    # The paper's figures stand beside the dynamic-KD student only.
    assert ncbi["student-dynamic"]["paper_f"] == 88.63 and ncbi["student-dynamic"]["paper_gap"] == -1.10
    assert ncbi["student-nokd"]["paper_f"] is None


def pooled_sd(a: List[float], b: List[float]) -> float:
    """Written out independently of the module: sqrt of the pooled variance."""
    ss = sum((x - statistics.mean(a)) ** 2 for x in a) + sum((x - statistics.mean(b)) ** 2 for x in b)
    return math.sqrt(ss / (len(a) + len(b) - 2))


def test_kd_against_nokd_and_schedules_against_constant(metrics):
    table = gather_paper_table(metrics["root"])
    written = metrics["written"]
    entry = table["corpora"]["NCBI-disease"]
    dynamic = pct(written["NCBI-disease/student-dynamic"], "f")
    nokd = pct(written["NCBI-disease/student-nokd"], "f")
    constant = pct(written["NCBI-disease/student-constant"], "f")
    kd = {row["a"]: row for row in entry["kd_vs_nokd"]}
    assert set(kd) == {"student-dynamic", "student-constant", "student-cosine"}
    row = kd["student-dynamic"]
    assert row["b"] == "student-nokd" and (row["n_a"], row["n_b"]) == (3, 3)
    assert row["diff"] == pytest.approx(statistics.mean(dynamic) - statistics.mean(nokd))
    assert row["pooled_sd"] == pytest.approx(pooled_sd(dynamic, nokd))
    assert row["exceeds_two_sd"] == (row["diff"] > 2 * pooled_sd(dynamic, nokd))
    schedules = {row["a"]: row for row in entry["schedules_vs_constant"]}
    assert set(schedules) == {"student-dynamic", "student-cosine"}
    row = schedules["student-dynamic"]
    assert row["diff"] == pytest.approx(statistics.mean(dynamic) - statistics.mean(constant))
    # One constant run: its spread is unknown, the three dynamic runs give the pooled SD.
    assert row["pooled_sd"] == pytest.approx(pooled_sd(dynamic, constant))


def test_int8_forms_are_paired_with_their_fp32_seed(metrics, tmp_path):
    """`int8-seed` writes student-dynamic-<form>-seed<k>.json: each form gets a
    row in the scores, its change against the same seed's fp32 student, and no
    place among the trained students' comparisons or timings."""
    root = metrics["root"] / "NCBI-disease"
    fp32 = {
        seed: 100 * json.loads((root / f"student-dynamic-seed{seed}.json").read_text())["ents_f"] for seed in (1, 2, 3)
    }
    offsets = {"int8": (-0.01, -0.02), "onnx-int8-smooth": (-0.002, 0.001)}
    for form, (first, second) in offsets.items():
        for seed, offset in ((1, first), (2, second), (5, 0.0)):  # seed 5 has no fp32 run
            f = (fp32[seed] / 100 if seed in fp32 else 0.5) + offset
            write_metrics(root / f"student-dynamic-{form}-seed{seed}.json", f, f, f)
    table = gather_paper_table(metrics["root"], training_dir=tmp_path)
    entry = table["corpora"]["NCBI-disease"]
    forms = {row["variant"]: row for row in entry["int8"]}
    assert set(forms) == {"student-dynamic-int8", "student-dynamic-onnx-int8-smooth"}
    row = forms["student-dynamic-int8"]
    assert (row["base"], row["form"], row["seeds"]) == ("student-dynamic", "int8", [1, 2])
    assert row["change"]["mean"] == pytest.approx(-1.5) and row["change"]["sd"] == pytest.approx(math.sqrt(0.5))
    assert forms["student-dynamic-onnx-int8-smooth"]["change"]["mean"] == pytest.approx(-0.05)
    assert entry["variants"]["student-dynamic-int8"]["n"] == 3  # its own scores keep every seed
    compared = {row["a"] for row in entry["kd_vs_nokd"] + entry["schedules_vs_constant"]}
    assert not any("int8" in name for name in compared | set(entry["timing"]))
    from paper_table_md import render_markdown

    rows = parse_md_table(render_markdown(table), "int8 forms against their fp32 student")
    assert ["NCBI-disease", "student-dynamic-int8", "PyTorch dynamic int8 (`quantize`)", "2"] == rows[0][:4]
    assert rows[0][5] == "−1.50 ± 0.71"


def test_one_seed_has_no_sd(metrics):
    table = gather_paper_table(metrics["root"])
    cell = table["corpora"]["NCBI-disease"]["variants"]["student-constant"]
    assert cell["n"] == 1 and cell["seeds"] == [1]
    assert cell["f"]["sd"] is None and cell["f"]["mean"] == pytest.approx(
        100 * metrics["written"]["NCBI-disease/student-constant"][0]["f"]
    )
    # One run on each side: no pooled SD, no verdict.
    bc5cdr = table["corpora"]["BC5CDR"]
    assert bc5cdr["variants"]["student-dynamic"]["n"] == 1
    markdown = (write_paper_table(table, metrics["root"].parent / "out")[0]).read_text(encoding="utf8")
    constant_row = next(
        line for line in markdown.splitlines() if line.startswith("| NCBI-disease | student-constant |")
    )
    assert f"{cell['f']['mean']:.2f} ± —" in constant_row


def test_missing_variant_and_corpus_read_not_run(metrics):
    table = gather_paper_table(metrics["root"])
    bc5cdr = table["corpora"]["BC5CDR"]
    nokd = bc5cdr["variants"]["student-nokd"]
    assert (nokd["n"], nokd["status"], nokd["seeds"]) == (0, "not run", [])
    assert nokd["p"] is None and nokd["r"] is None and nokd["f"] is None and nokd["gap"] is None
    kd = {row["a"]: row for row in bc5cdr["kd_vs_nokd"]}
    assert kd["student-dynamic"]["status"] == "not run" and kd["student-dynamic"]["diff"] is None
    for corpus in ("BC5CDR-chem", "BC4CHEMD"):
        entry = table["corpora"][corpus]
        assert entry["status"] == "not run"
        assert all(cell["n"] == 0 and cell["f"] is None for cell in entry["variants"].values())
        # The paper's figure is there even without a run of ours.
        assert entry["variants"]["student-dynamic"]["paper_f"] == PAPER[corpus]["f"]
    markdown = write_paper_table(table, metrics["root"].parent / "out")[0].read_text(encoding="utf8")
    row = next(line for line in markdown.splitlines() if line.startswith("| BC4CHEMD | student-dynamic |"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells[2:7] == ["not run"] * 5
    assert cells[7:] == ["92.60", "−0.15"]


def test_old_and_foreign_files_are_skipped_with_a_reason(metrics):
    table = gather_paper_table(metrics["root"])
    skipped = {Path(item["file"]).name: item["reason"] for item in table["skipped"]}
    assert set(skipped) == {"student.json", "raw-teacher.json"}
    assert "seed" in skipped["student.json"]
    # The unseeded 0.99 run is in no mean.
    assert table["corpora"]["NCBI-disease"]["variants"]["student-dynamic"]["f"]["mean"] < 90
    assert parse_run_name("student-nokd")[0] is None
    assert parse_run_name("student-cosine-late-seed12")[:2] == ("student-cosine-late", 12)
    assert parse_run_name("teacher")[:2] == ("teacher", None)


def test_per_type_scores_for_bc5cdr(metrics):
    table = gather_paper_table(metrics["root"])
    per_type = table["corpora"]["BC5CDR"]["per_type"]
    for stem, variant in (("teacher", "teacher"), ("student-dynamic-seed1", "student-dynamic")):
        assert set(per_type[variant]) == {"Chemical", "Disease"}
        for label, expected in metrics["types"][stem].items():
            for key in "prf":
                assert per_type[variant][label][key]["mean"] == pytest.approx(100 * expected[key])
    assert per_type["student-nokd"] == {}
    assert "per_type" not in table["corpora"]["NCBI-disease"]


def parse_md_table(markdown: str, heading: str) -> List[List[str]]:
    lines = markdown.split(f"## {heading}\n", 1)[1].split("\n## ", 1)[0].splitlines()
    rows = [line for line in lines if line.startswith("| ") and not line.startswith("| ---")]
    return [[c.strip() for c in row.strip().strip("|").split("|")] for row in rows[1:]]


def fmt(summary) -> str:
    if summary is None:
        return "not run"
    sd = "—" if summary["sd"] is None else f"{summary['sd']:.2f}"
    return f"{summary['mean']:.2f} ± {sd}"


def signed(value: float) -> str:
    return f"{value:+.2f}".replace("-", "−")


def test_markdown_and_json_agree(metrics, tmp_path):
    md_path, json_path = write_paper_table(gather_paper_table(metrics["root"]), tmp_path / "results")
    table = srsly.read_json(json_path)
    markdown = md_path.read_text(encoding="utf8")
    rows = parse_md_table(markdown, "Test scores")
    # Adapted-teacher and release corpora without runs are left out of the Markdown.
    shown = {c: e for c, e in table["corpora"].items() if e["status"] == "ok" or c in BASE_CORPORA}
    expected_rows = [(c, v) for c, entry in shown.items() for v in entry["variants"]]
    assert [tuple(row[:2]) for row in rows] == expected_rows
    assert list(dict.fromkeys(c for c, _ in expected_rows)) == list(BASE_CORPORA)
    assert set(table["corpora"]) == set(CORPORA)
    for row in rows:
        cell = table["corpora"][row[0]]["variants"][row[1]]
        assert row[2] == (str(cell["n"]) if cell["n"] else "not run")
        assert row[3:6] == [fmt(cell[key]) for key in ("p", "r", "f")]
        if cell["gap"] is not None:
            assert row[6] == signed(cell["gap"])
    kd_rows = parse_md_table(markdown, "KD against no KD")
    kd = [row for entry in shown.values() for row in entry["kd_vs_nokd"]]
    assert len(kd_rows) == len(kd)
    for md_row, row in zip(kd_rows, kd):
        if row["diff"] is not None:
            assert md_row[4] == signed(row["diff"])
            assert md_row[6] == {None: "—", True: "yes", False: "no"}[row["exceeds_two_sd"]]
    per_type_rows = parse_md_table(markdown, "Per type: BC5CDR")
    chemical = table["corpora"]["BC5CDR"]["per_type"]["student-dynamic"]["Chemical"]
    assert ["student-dynamic", "Chemical", "1", *(fmt(chemical[k]) for k in "prf")] in per_type_rows


def test_malformed_json_names_the_file_and_line(metrics):
    bad = metrics["root"] / "BC4CHEMD" / "student-dynamic-seed1.json"
    bad.parent.mkdir(parents=True)
    bad.write_text('{"ents_p": 0.9,\n "ents_r": 0.8\n "ents_f": 0.85}\n', encoding="utf8")
    with pytest.raises(PaperTableError, match=re.escape(f"{bad}:3: not valid JSON")):
        gather_paper_table(metrics["root"])
    bad.write_text('{"ents_p": 0.9, "ents_r": 0.8}', encoding="utf8")
    with pytest.raises(PaperTableError, match=r"student-dynamic-seed1.json: .*missing ents_f"):
        gather_paper_table(metrics["root"])
    bad.write_text('{"ents_p": 90.0, "ents_r": 0.8, "ents_f": 0.85}', encoding="utf8")
    with pytest.raises(PaperTableError, match=r"expected ents_p to be a number from 0 to 1, found 90.0"):
        gather_paper_table(metrics["root"])


def test_cli_writes_both_files_and_fails_clearly(metrics, tmp_path):
    runner = CliRunner()
    cli = typer.Typer()
    cli.command()(paper_table_main)
    out = tmp_path / "results"
    result = runner.invoke(cli, [str(metrics["root"]), "--output", str(out)])
    assert result.exit_code == 0, result.output
    assert (out / "paper-table.md").is_file()
    assert srsly.read_json(out / "paper-table.json")["corpora"]["NCBI-disease"]["variants"]["teacher"]["n"] == 1
    bad = metrics["root"] / "NCBI-disease" / "teacher.json"
    bad.write_text("{not json", encoding="utf8")
    result = runner.invoke(cli, [str(metrics["root"]), "--output", str(out)])
    assert result.exit_code == 1
    assert str(bad) in result.output and "not valid JSON" in result.output


def write_log(path: Path, records: List[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf8")


def test_training_times_from_distill_logs(metrics, tmp_path):
    training = tmp_path / "training"
    walls = {1: 400, 2: 460}
    for seed, wall in walls.items():
        records = [{"step": 99, "seconds": wall // 8, "score": 0.5}, {"step": 799, "seconds": wall, "score": 0.8}]
        write_log(training / "NCBI-disease" / f"student-dynamic-seed{seed}" / "distill_log.jsonl", records)
    table = gather_paper_table(metrics["root"], training_dir=training)
    timing = table["corpora"]["NCBI-disease"]["timing"]
    assert timing["student-dynamic"]["n"] == 2  # seed 3 has no log
    assert timing["student-dynamic"]["wall_s"]["mean"] == pytest.approx(statistics.mean(walls.values()))
    assert timing["student-dynamic"]["s_per_step"]["mean"] == pytest.approx(
        statistics.mean(w / 800 for w in walls.values())
    )
    assert timing["student-nokd"]["n"] == 0 and timing["student-nokd"]["wall_s"] is None
    assert "teacher" not in timing
    markdown = write_paper_table(table, tmp_path / "results")[0].read_text(encoding="utf8")
    rows = parse_md_table(markdown, "Training time")
    assert [
        "NCBI-disease",
        "student-dynamic",
        "2",
        f"{statistics.mean(walls.values()):.0f} ± {statistics.stdev(walls.values()):.0f}",
        f"{statistics.mean(w / 800 for w in walls.values()):.3f} ± {statistics.stdev(w / 800 for w in walls.values()):.3f}",
    ] in rows


def test_malformed_distill_log_names_the_line(tmp_path):
    log = tmp_path / "distill_log.jsonl"
    log.write_text('{"step": 0, "seconds": 1}\n\n{"step": "x", "seconds": 2}\n', encoding="utf8")
    with pytest.raises(
        PaperTableError, match=re.escape(f"{log}:3: expected a record with numeric 'seconds' and 'step'")
    ):
        read_distill_log(log)
    log.write_text('{"step": 0, "seconds": 1}\n{"step": 1,\n', encoding="utf8")
    with pytest.raises(PaperTableError, match=re.escape(f"{log}:2: not valid JSON")):
        read_distill_log(log)


def project_config(**overrides: str) -> dict:
    from weasel.util import substitute_project_variables

    config = substitute_project_variables(
        srsly.read_yaml(REPO / "project.yml"), {f"vars.{k}": v for k, v in overrides.items()}
    )
    return {cmd["name"]: cmd for cmd in config["commands"]}


@pytest.mark.parametrize(
    "command,variant",
    [
        ("distill-seed", "student-dynamic"),
        ("distill-constant-seed", "student-constant"),
        ("train-student-nokd-seed", "student-nokd"),
        ("distill-cosine-seed", "student-cosine"),
    ],
)
def test_project_seed_commands_write_what_the_table_reads(command, variant):
    """Each seeded command evaluates into the file name the table parses, saves
    the model where --training looks for its log, and passes the seed and the
    dev subset."""
    spec = project_config(corpus="BC4CHEMD", seed="7", dev_limit="1000")[command]
    metrics_out = [Path(o) for o in spec["outputs"] if o.startswith("metrics/")]
    assert len(metrics_out) == 1 and metrics_out[0].parent == Path("metrics/BC4CHEMD")
    assert parse_run_name(metrics_out[0].stem)[:2] == (variant, 7)
    assert f"training/BC4CHEMD/{variant}-seed7/model-best" in spec["outputs"]
    distill = next(line for line in spec["script"] if "spacy fastbioner distill" in line)
    assert "--system.seed 7" in distill and "--corpora.dev.limit 1000" in distill
    assert f"--output training/BC4CHEMD/{variant}-seed7 " in distill


def test_project_paper_workflow_and_bc5cdr_package():
    config = srsly.read_yaml(REPO / "project.yml")
    names = {cmd["name"] for cmd in config["commands"]}
    assert set(config["workflows"]["paper-table"]) <= names
    assert project_config()["gather-paper-table"]["outputs"] == ["results/paper-table.md", "results/paper-table.json"]
    spec = project_config(corpus="BC5CDR", seed="1")["package-paper-student"]
    assert "--corpus BC5CDR " in spec["script"][0]
    assert f"en_{model_name('BC5CDR')}" == "en_fastbioner_bc5cdr"


def test_paper_runs_plan(tmp_path):
    """The glue script's dry run: the teacher's steps once, each variant per
    seed, the package of the first seed, with the dev subset and extra vars."""
    result = subprocess.run(
        [
            sys.executable,
            str(REPO / "project" / "scripts" / "paper_runs.py"),
            "BC5CDR-chem",
            "--seeds",
            "3,5",
            "--variants",
            "dynamic,nokd,int8",
            "--dev-limit",
            "1000",
            "--dry",
            "--force",
            "--vars.gpu_id",
            "0",
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=900,
    )
    assert result.returncode == 0, result.stderr
    steps = [re.search(r"project run (\S+) .*", line) for line in result.stdout.splitlines()]
    commands = [(m.group(1), re.search(r"--vars.seed (\d+)", m.group(0))) for m in steps if m]
    assert [(name, seed and seed.group(1)) for name, seed in commands] == [
        ("assets-local", None),
        ("demo-teacher-model", None),
        ("corpus", None),
        ("demo-train-teacher", None),
        ("evaluate-teacher", None),
        ("make-student", None),
        ("teacher-targets", None),
        ("distill-seed", "3"),
        ("train-student-nokd-seed", "3"),
        ("int8-seed", "3"),
        ("distill-seed", "5"),
        ("train-student-nokd-seed", "5"),
        ("int8-seed", "5"),
        ("package-paper-student", "3"),
    ]
    assert all("--vars.corpus BC5CDR-chem --vars.dev_limit 1000 --vars.gpu_id 0" in m.group(0) for m in steps if m)


def test_paper_runs_skips_steps_whose_outputs_exist(tmp_path):
    """A resumed run skips a seeded step once its model and metrics exist, and
    only for that seed."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("paper_runs", REPO / "project" / "scripts" / "paper_runs.py")
    paper_runs = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(paper_runs)
    (tmp_path / "project.yml").write_text((REPO / "project.yml").read_text(encoding="utf8"), encoding="utf8")
    seed2 = {"vars.corpus": "NCBI-disease", "vars.seed": "2"}
    assert not paper_runs.outputs_exist(tmp_path, "distill-seed", seed2)
    (tmp_path / "training" / "NCBI-disease" / "student-dynamic-seed2" / "model-best").mkdir(parents=True)
    assert not paper_runs.outputs_exist(tmp_path, "distill-seed", seed2)  # no metrics yet
    write_metrics(tmp_path / "metrics" / "NCBI-disease" / "student-dynamic-seed2.json", 0.8, 0.8, 0.8)
    assert paper_runs.outputs_exist(tmp_path, "distill-seed", seed2)
    assert not paper_runs.outputs_exist(tmp_path, "distill-seed", {**seed2, "vars.seed": "3"})
    assert not paper_runs.outputs_exist(tmp_path, "distill-constant-seed", seed2)


def test_corpora_without_runs_here_are_kept_from_the_earlier_table(tmp_path):
    """Runs gathered on another machine stay in the table beside the new ones (an adapted
    teacher's corpus), marked as kept; a corpus with runs here is gathered again."""
    from paper_table import CORPORA, gather_paper_table, keep_earlier_corpora
    from paper_table_md import render_markdown

    metrics = tmp_path / "metrics"
    for corpus in ("NCBI-disease", "NCBI-disease-adapted"):
        (metrics / corpus).mkdir(parents=True)
    write_metrics(metrics / "NCBI-disease" / "teacher.json", 0.80, 0.80, 0.80)
    earlier = gather_paper_table(metrics, corpora=CORPORA)
    (metrics / "NCBI-disease" / "teacher.json").unlink()
    write_metrics(metrics / "NCBI-disease-adapted" / "teacher.json", 0.83, 0.83, 0.83)
    write_metrics(metrics / "NCBI-disease-adapted" / "student-dynamic-seed1.json", 0.82, 0.82, 0.82)
    table = gather_paper_table(metrics, corpora=CORPORA)
    assert keep_earlier_corpora(table, json.loads(json.dumps(earlier))) == ["NCBI-disease"]
    corpora = table["corpora"]
    assert corpora["NCBI-disease"]["kept"] and corpora["NCBI-disease"]["variants"]["teacher"]["f"]["mean"] == 80.0
    adapted = corpora["NCBI-disease-adapted"]["variants"]["student-dynamic"]
    assert "kept" not in corpora["NCBI-disease-adapted"] and adapted["gap"] == pytest.approx(-1.0)
    assert adapted["paper_f"] == 88.63  # the paper's NCBI-disease figure, beside the adapted rows too
    assert "Kept from the earlier table" in render_markdown(table) and "NCBI-disease." in render_markdown(table)
