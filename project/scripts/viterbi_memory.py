"""Peak memory of the constrained decoding of `fastbioner_ner` on a batch of
one very long doc among many short ones (issue 27, item 12), for the decoding
of a git revision (the "before") and of the working tree (the "after").

Every doc's scores are random, so that every doc's greedy tags break a
constraint and go through the dynamic programme (the worst case). Each
measurement runs in a fresh process: `peak_traced_mb` is the most memory that
numpy and Python held at once (tracemalloc, deterministic), `peak_rss_mb`
the process's peak resident memory above what it held before decoding.

    python project/scripts/viterbi_memory.py --before 8c1c098 --output results/viterbi-memory.json

A "before" run whose arrays would not fit under `--max-gb` of address space
ends in a MemoryError, reported as such, rather than pushing the machine into
its out-of-memory killer; its arrays' size is computed instead.
"""

import json
import resource
import subprocess
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path
from typing import Any, Dict, List, Optional

import typer

DECODING = "spacy_fastbioner/pipeline/decoding.py"
ROOT = Path(__file__).resolve().parents[2]


def measure(decoding: Path, long_tokens: int, n_short: int, n_labels: int, max_gb: float, seed: int) -> Dict[str, Any]:
    """Decode one batch with the decoding module at `decoding`, in this process."""
    import importlib.util

    import numpy

    if max_gb > 0:
        limit = int(max_gb * 2**30)
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    spec = importlib.util.spec_from_file_location("decoding_under_test", decoding)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    tags = module.bio_tags([f"L{i}" for i in range(n_labels)])
    start, trans = module.transition_constraints(tags)
    rng = numpy.random.default_rng(seed)
    tables = [rng.normal(size=(int(n), len(tags))).astype("f") * 3 for n in rng.integers(20, 41, size=n_short)]
    tables.insert(n_short // 2, rng.normal(size=(long_tokens, len(tags))).astype("f") * 3)
    n_tokens = sum(len(t) for t in tables)
    # What the padded programme (one group of every doc) allocates: float32
    # scores and int64 backpointers of (docs x longest x (tags + 1)).
    padded_gb = len(tables) * long_tokens * (len(tags) + 1) * (4 + 8) / 2**30
    result: Dict[str, Any] = {
        "long_tokens": long_tokens,
        "n_docs": len(tables),
        "n_tokens": n_tokens,
        "n_tags": len(tags),
        "scores_mb": round(sum(t.nbytes for t in tables) / 2**20, 1),
        "one_group_arrays_gb": round(padded_gb, 2),
        "max_gb": max_gb or None,
    }
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    tracemalloc.start()
    began = time.perf_counter()
    try:
        _, lengths = module.viterbi_flat(tables, start, trans)
    except MemoryError:
        result["error"] = f"MemoryError under {max_gb} GB of address space"
        return result
    result["seconds"] = round(time.perf_counter() - began, 2)
    result["peak_traced_mb"] = round(tracemalloc.get_traced_memory()[1] / 2**20, 1)
    tracemalloc.stop()
    result["peak_rss_mb"] = round((resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss_before) / 1024, 1)
    assert int(lengths.sum()) == n_tokens
    return result


def decoding_of(revision: Optional[str], folder: Path) -> Path:
    """The decoding module of a git revision, written to `folder`; the
    working tree's for None."""
    if revision is None:
        return ROOT / DECODING
    source = subprocess.run(
        ["git", "show", f"{revision}:{DECODING}"], cwd=ROOT, check=True, capture_output=True, text=True, timeout=60
    ).stdout
    path = folder / f"decoding_{revision}.py"
    path.write_text(source, encoding="utf8")
    return path


def main(
    # fmt: off
    before: str = typer.Option("8c1c098", "--before", help="Git revision whose decoding is the 'before'"),
    long_tokens: List[int] = typer.Option(
        [10_000, 20_000, 100_000], "--long", help="Tokens of the long doc (repeatable)"
    ),
    n_short: int = typer.Option(1000, "--short", help="Short docs (20 to 40 tokens) in the batch"),
    n_labels: int = typer.Option(2, "--labels", help="Entity labels (2 labels: 5 BIO tags)"),
    max_gb: float = typer.Option(6.0, "--max-gb", help="Address space of each measuring process, in GB (0: no limit)"),
    output: Optional[Path] = typer.Option(None, "--output", help="JSON with the figures"),
    one: Optional[str] = typer.Option(None, "--one", hidden=True, help="Internal: measure one configuration"),
    # fmt: on
) -> None:
    """Measure the decoding's peak memory before and after, one process per figure."""
    if one is not None:
        path, size = one.split("::")
        print(json.dumps(measure(Path(path), int(size), n_short, n_labels, max_gb, seed=0)))
        return
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for label, revision in (("before", before), ("after", None)):
            decoding = decoding_of(revision, Path(tmp))
            for tokens in long_tokens:
                command = [sys.executable, __file__, "--one", f"{decoding}::{tokens}", "--short", str(n_short)]
                command += ["--labels", str(n_labels), "--max-gb", str(max_gb)]
                done = subprocess.run(command, check=True, capture_output=True, text=True, timeout=1800)
                row = {"decoding": label, "revision": revision or "working tree", **json.loads(done.stdout)}
                print(json.dumps(row), flush=True)
                rows.append(row)
    if output is not None:
        output.parent.mkdir(parents=True, exist_ok=True)
        output.write_text(json.dumps({"rows": rows}, indent=2) + "\n", encoding="utf8")


if __name__ == "__main__":
    typer.run(main)
