"""The distillation memory report: start, middle and end of a run's log."""

import json

import pytest

from spacy_fastbioner.benchmark.distill_memory import markdown_report, summarise_log


def write_log(path, records):
    path.write_text("\n".join(json.dumps(r) for r in records) + "\n", encoding="utf8")
    return path


def record(step, rss, peak, seconds=0.5, missing=0):
    losses = {"fastbioner_ner": 1.0}
    if missing:
        losses["teacher_targets_missing"] = missing
    return {
        "step": step,
        "rss_mb": rss,
        "peak_rss_mb": peak,
        "step_seconds": seconds,
        "words": step * 10,
        "losses": losses,
    }


def test_summary_takes_start_middle_and_end(tmp_path):
    log = write_log(
        tmp_path / "distill_log.jsonl",
        [
            record(100, 900, 950, 0.4),
            record(200, 910, 960, 0.6, missing=3),
            record(300, 905, 970, 0.5),
            record(399, 920, 990, 0.5),
        ],
    )
    summary = summarise_log(log)
    assert summary["start"] == {"step": 100, "rss_mb": 900, "peak_rss_mb": 950}
    assert summary["middle"]["step"] == 200  # nearest to half of the last step
    assert summary["end"] == {"step": 399, "rss_mb": 920, "peak_rss_mb": 990}
    assert summary["steps"] == 400 and summary["words"] == 3990
    assert summary["step_seconds"] == pytest.approx(0.5)
    assert summary["teacher_targets_missing"] == 3
    report = {"method": "m", "runs": {"live teacher": summary}}
    table = markdown_report(report)
    assert "| live teacher | 400 | 3,990 | 900 MiB | 910 MiB | 920 MiB | 990 MiB | 0.500 |" in table


def test_an_empty_log_is_an_error(tmp_path):
    with pytest.raises(ValueError, match="no records"):
        summarise_log(write_log(tmp_path / "distill_log.jsonl", []))
