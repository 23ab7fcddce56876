"""How `spacy fastbioner annotate` scales on one machine, and what that means
for PubMed.

Each model annotates the first N texts of a one-text-per-line file
(`assets/raw/unlabelled-abstracts.txt`) with `annotate()` itself, in a fresh
child process per setting: 1 process x 1 thread, 2 processes x 1 thread,
1 process x 2 threads (what a user gets from one process by default on two
cores), and on request one process with a child forked per shard ("1x1i",
`--isolate-shards`). Words are the pipeline's tokens; the clock starts once the model is
loaded. The resident set size (VmRSS) and its peak (VmHWM) of the annotating
process and of each of its children are read from /proc when 10%, 50% and
100% of the documents are done. PubMed's size is taken out from the words/s
per core: core-hours for 36M abstracts (about 9B words) and the cores that
finish it in a day.

Run as `spacy fastbioner annotate-benchmark` or
`python -m spacy_fastbioner.benchmark.scaling MODEL DATA OUT ...` (the child).
"""

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

# (processes, threads per process, shards in a process forked for each)
Setting = Tuple[int, int, bool]
SETTINGS: Tuple[Setting, ...] = ((1, 1, False), (2, 1, False), (1, 2, False))
PUBMED_ABSTRACTS = 36_000_000
PUBMED_WORDS = 9_000_000_000
SAMPLES = (0.1, 0.5, 1.0)


def _status_mb(pid: int, field: str) -> Optional[float]:
    try:
        with open(f"/proc/{pid}/status") as file_:
            for line in file_:
                if line.startswith(field + ":"):
                    return round(int(line.split()[1]) / 1024, 1)
    except (OSError, ValueError, IndexError):
        pass
    return None


def _children(pid: int) -> List[int]:
    """The live child processes of a process (Linux /proc)."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as file_:
                    stat = file_.read()
                if int(stat[stat.rindex(")") + 2 :].split()[1]) == pid:
                    found.append(int(entry))
            except (OSError, ValueError, IndexError):
                continue
    return sorted(found)


def memory_sample() -> Dict[str, Any]:
    """RSS and peak RSS (MiB) of this process and of each child process."""
    me = os.getpid()
    return {
        "main": {"rss_mb": _status_mb(me, "VmRSS"), "peak_mb": _status_mb(me, "VmHWM")},
        "children": [
            {"rss_mb": _status_mb(pid, "VmRSS"), "peak_mb": _status_mb(pid, "VmHWM")} for pid in _children(me)
        ],
    }


def parse_settings(text: str) -> List[Setting]:
    """'1x1,2x1,1x2,1x1i' -> [(1, 1, False), (2, 1, False), (1, 2, False),
    (1, 1, True)]: (processes, threads per process, isolated shards)."""
    settings = []
    for item in (part.strip() for part in text.split(",")):
        processes, sep, threads = item.partition("x")
        isolate = threads.endswith("i")
        threads = threads[:-1] if isolate else threads
        if not (sep and processes.isdigit() and threads.isdigit() and int(processes) > 0 and int(threads) > 0):
            raise ValueError(
                f"Invalid setting {item!r} in {text!r}: expected PROCESSESxTHREADS, e.g. 2x1, or 1xTHREADSi "
                "for shards in forked processes"
            )
        if isolate and int(processes) != 1:
            raise ValueError(f"Invalid setting {item!r}: isolated shards ('i') are for one process")
        settings.append((int(processes), int(threads), isolate))
    return settings


def setting_label(n_process: int, n_threads: int, isolate: bool = False) -> str:
    """(2, 1, False) -> '2x1'; (1, 1, True) -> '1x1i'."""
    return f"{n_process}x{n_threads}{'i' if isolate else ''}"


def run_child(
    model: str,
    data: Path,
    output: Path,
    *,
    n_process: int,
    n_threads: int,
    batch_size: int,
    shard_size: int,
    max_batch_items: Optional[int] = None,
    isolate_shards: bool = False,
) -> Dict[str, Any]:
    """Annotate `data` with one setting, timing it and sampling memory (in
    this process: run it in a fresh one)."""
    from ..annotate import annotate

    state: Dict[str, Any] = {"start": None, "samples": {}}

    def monitor(done: int, total: int, words: int) -> None:
        if state["start"] is None:
            state["start"] = time.perf_counter()
        for fraction in SAMPLES:
            key = f"{round(fraction * 100)}%"
            if key not in state["samples"] and done >= fraction * total:
                state["samples"][key] = memory_sample()

    summary = annotate(
        model,
        [data],
        output,
        n_process=n_process,
        n_threads=n_threads,
        batch_size=batch_size,
        max_batch_items=max_batch_items,
        shard_size=shard_size,
        isolate_shards=isolate_shards,
        quiet=True,
        monitor=monitor,
    )
    seconds = time.perf_counter() - state["start"]
    return {
        "n_process": n_process,
        "n_threads": n_threads,
        "isolate_shards": isolate_shards,
        "n_docs": summary["n_written"],
        "n_words": summary["n_words"],
        "seconds": round(seconds, 2),
        "words_per_second": round(summary["n_words"] / seconds, 1),
        "docs_per_second": round(summary["n_written"] / seconds, 2),
        "memory": state["samples"],
    }


def run_scaling_benchmark(
    models: Sequence[Tuple[str, str]],
    data: Path,
    output_dir: Path,
    *,
    n_docs: int = 8692,
    batch_size: int = 64,
    shard_size: int = 1000,
    max_batch_items: Optional[int] = None,
    settings: Sequence[Setting] = SETTINGS,
    timeout: float = 4 * 3600,
) -> Dict[str, Any]:
    """Benchmark each model at each setting, in fresh processes, and write
    `scaling.json` and `scaling.md` to `output_dir`.

    models (Sequence[Tuple[str, str]]): (label, pipeline path or package).
    data (Path): One text per line.
    output_dir (Path): Where the reports go.
    n_docs (int): The first n_docs lines are annotated.
    batch_size (int): `--batch-size` of the runs.
    shard_size (int): `--shard-size` of the runs.
    max_batch_items (Optional[int]): `--max-batch-items` of the runs (each
        pipeline's own when None).
    settings (Sequence[Setting]): (processes, threads per process, isolated shards).
    timeout (float): Seconds before one run is stopped.
    RETURNS (Dict[str, Any]): The results, as in scaling.json.
    """
    output_dir.mkdir(parents=True, exist_ok=True)
    results: Dict[str, Any] = {
        "data": str(data),
        "n_docs": n_docs,
        "batch_size": batch_size,
        "shard_size": shard_size,
        "max_batch_items": max_batch_items,
        "cpu_count": os.cpu_count(),
        "models": {},
    }
    with tempfile.TemporaryDirectory() as tmp:
        texts = Path(tmp) / "texts.txt"
        with Path(data).open(encoding="utf8") as src, texts.open("w", encoding="utf8") as dst:
            for i, line in enumerate(src):
                if i >= n_docs:
                    break
                dst.write(line)
        for label, model in models:
            runs = []
            for n_process, n_threads, isolate in settings:
                label_ = setting_label(n_process, n_threads, isolate)
                out = Path(tmp) / f"{len(results['models'])}-{label_}"
                cmd = [
                    sys.executable,
                    "-m",
                    __name__,
                    model,
                    str(texts),
                    str(out),
                    "--n-process",
                    str(n_process),
                    "--n-threads",
                    str(n_threads),
                    "--batch-size",
                    str(batch_size),
                    "--shard-size",
                    str(shard_size),
                ]
                if max_batch_items is not None:
                    cmd += ["--max-batch-items", str(max_batch_items)]
                if isolate:
                    cmd.append("--isolate-shards")
                env = {**os.environ, "OMP_NUM_THREADS": str(n_threads)}
                proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)
                lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
                if proc.returncode != 0 or not lines:
                    raise RuntimeError(f"{label} at {label_} failed:\n{proc.stderr[-3000:]}")
                runs.append(json.loads(lines[-1]))
            results["models"][label] = {"model": model, "runs": runs, **_derived(runs)}
    (output_dir / "scaling.json").write_text(json.dumps(results, indent=2) + "\n", encoding="utf8")
    (output_dir / "scaling.md").write_text(scaling_markdown(results), encoding="utf8")
    return results


def _derived(runs: Sequence[Dict[str, Any]]) -> Dict[str, Any]:
    """Scaling ratios against 1x1 and the PubMed extrapolation."""
    by = {_key(r): r["words_per_second"] for r in runs}
    base = by.get((1, 1, False))
    derived: Dict[str, Any] = {}
    if base:
        derived["scaling"] = {setting_label(*key): round(w / base, 3) for key, w in by.items()}
        multi = [w / (p * t) for (p, t, _), w in by.items() if p > 1]
        per_core = max(multi) if multi else base
        core_hours = PUBMED_WORDS / per_core / 3600
        derived["pubmed"] = {
            "words_per_second_per_core": round(per_core, 1),
            "core_hours": round(core_hours),
            "cores_for_one_day": round(core_hours / 24, 1),
            "abstracts": PUBMED_ABSTRACTS,
            "words": PUBMED_WORDS,
        }
    return derived


def _key(run: Dict[str, Any]) -> Setting:
    return run["n_process"], run["n_threads"], bool(run.get("isolate_shards"))


def _mem(run: Dict[str, Any], key: str) -> str:
    sample = run["memory"].get(key)
    if not sample:
        return "–"
    main = sample["main"]["peak_mb"]
    children = [c["peak_mb"] for c in sample["children"] if c["peak_mb"] is not None]
    if children:
        return f"{main:,.0f} + " + " / ".join(f"{c:,.0f}" for c in children)
    return f"{main:,.0f}"


def scaling_markdown(results: Dict[str, Any]) -> str:
    """The report: a table per setting, then the PubMed extrapolation."""
    lines = [
        f"# Annotation scaling: {results['n_docs']:,} texts of `{Path(results['data']).name}`",
        "",
        f"`annotate()` in a fresh process per setting, batch size {results['batch_size']}, shards of "
        f"{results['shard_size']}, max batch items {results.get('max_batch_items') or 'as saved'}, "
        f"{results['cpu_count']} CPUs. Words are the pipeline's tokens; the clock starts "
        "after loading. Memory: peak RSS (VmHWM, MiB) of the main process + each child, at 10%, 50%, 100% "
        "of the documents; 1x1i: one process whose shards each run in a process forked for it.",
        "",
        "| model | processes x threads | words/s | docs/s | × 1x1 | peak RSS 10% | 50% | 100% |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for label, entry in results["models"].items():
        for run in entry["runs"]:
            key = setting_label(*_key(run))
            ratio = entry.get("scaling", {}).get(key)
            lines.append(
                f"| {label} | {key} | {run['words_per_second']:,.0f} | {run['docs_per_second']:,.1f} | "
                f"{'–' if ratio is None else f'{ratio:.2f}'} | {_mem(run, '10%')} | {_mem(run, '50%')} | "
                f"{_mem(run, '100%')} |"
            )
    lines += [
        "",
        f"## PubMed: {PUBMED_ABSTRACTS / 1e6:.0f}M abstracts, about {PUBMED_WORDS / 1e9:.0f}B words",
        "",
        "Words/s per core from the best multi-process run above (words/s ÷ processes × threads).",
        "",
        "| model | words/s per core | core-hours | cores to finish in 24 h |",
        "| --- | --- | --- | --- |",
    ]
    for label, entry in results["models"].items():
        pubmed = entry.get("pubmed")
        if pubmed:
            lines.append(
                f"| {label} | {pubmed['words_per_second_per_core']:,.0f} | {pubmed['core_hours']:,} | "
                f"{pubmed['cores_for_one_day']:,.1f} |"
            )
    return "\n".join(lines) + "\n"


def main(argv: Optional[List[str]] = None) -> None:
    import argparse

    parser = argparse.ArgumentParser(description="One annotate() run of the scaling benchmark (a child process).")
    parser.add_argument("model")
    parser.add_argument("data", type=Path)
    parser.add_argument("output", type=Path)
    parser.add_argument("--n-process", type=int, default=1)
    parser.add_argument("--n-threads", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--shard-size", type=int, default=1000)
    parser.add_argument("--max-batch-items", type=int, default=None)
    parser.add_argument("--isolate-shards", action="store_true")
    args = parser.parse_args(argv)
    result = run_child(
        args.model,
        args.data,
        args.output,
        n_process=args.n_process,
        n_threads=args.n_threads,
        batch_size=args.batch_size,
        shard_size=args.shard_size,
        max_batch_items=args.max_batch_items,
        isolate_shards=args.isolate_shards,
    )
    print(json.dumps(result))


if __name__ == "__main__":
    main()
