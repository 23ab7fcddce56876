"""Peak memory of a pipeline, measured in a fresh Python process.

In the benchmark's own process every model is loaded at once and the
allocator keeps freed memory, so its peak says little about one model. Here
a child process imports spaCy and torch, loads one pipeline and annotates
some docs; it reports its resident set size (RSS) after the imports, after
loading, and its peak RSS (Linux's VmHWM). PyTorch's CPU tensors are
not seen by `tracemalloc`, so RSS is the measure that counts them.

Run as `python -m spacy_fastbioner.benchmark.memory MODEL DATA --n-docs N`.
"""

import json
import subprocess
import sys
from pathlib import Path
from typing import Any, Dict, Optional

from ..util.process_memory import peak_rss_mb, rss_mb

METHOD = (
    "peak RSS (VmHWM of /proc/self/status) of a fresh process that loads the pipeline and "
    "annotates the docs; load = RSS after loading minus RSS after imports, "
    "peak_delta = peak RSS minus RSS after imports"
)


def measure_memory(
    model: str,
    data_path: Path,
    *,
    n_docs: int = 256,
    batch_size: int = 64,
    threads: Optional[int] = None,
    max_batch_items: Optional[int] = None,
    timeout: float = 1800.0,
) -> Dict[str, Any]:
    """Run the measurement in a child process.

    model (str): A pipeline path or package name.
    data_path (Path): The docs (.spacy or IOB .tsv).
    n_docs (int): How many docs the child annotates.
    batch_size (int): The batch size of `nlp.pipe`.
    threads (Optional[int]): torch threads in the child; torch's default when None.
    max_batch_items (Optional[int]): Override the transformer's max_batch_items.
    timeout (float): Seconds before the child is stopped.
    RETURNS (Dict[str, Any]): rss_after_imports_mb, load_mb, peak_mb,
        peak_delta_mb; or an "error" key when the child failed.
    """
    cmd = [
        sys.executable,
        "-m",
        __name__,
        str(model),
        str(data_path),
        "--n-docs",
        str(n_docs),
        "--batch-size",
        str(batch_size),
    ]
    if threads:
        cmd += ["--threads", str(threads)]
    if max_batch_items:
        cmd += ["--max-batch-items", str(max_batch_items)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    if proc.returncode != 0 or not lines:
        return {"error": (proc.stderr or proc.stdout).strip()[-2000:]}
    return json.loads(lines[-1])


def _child(
    model: str,
    data_path: str,
    n_docs: int,
    batch_size: int,
    threads: Optional[int],
    max_batch_items: Optional[int],
) -> Dict[str, Any]:

    from ..encoder.inputs import fresh_docs
    from ..encoder.transformer import set_max_batch_items
    from ..loading import load_pipeline
    from ..util.threads import set_threads
    from .data import load_gold_docs

    if threads:
        set_threads(threads)
    rss_imports = rss_mb()
    nlp = load_pipeline(model)
    if max_batch_items:
        set_max_batch_items(nlp, max_batch_items)
    rss_loaded = rss_mb()
    gold = load_gold_docs(Path(data_path), nlp.vocab)[:n_docs]
    for _ in nlp.pipe(fresh_docs(nlp, gold), batch_size=batch_size):
        pass
    peak = peak_rss_mb()
    return {
        "rss_after_imports_mb": round(rss_imports, 1),
        "load_mb": round(rss_loaded - rss_imports, 1),
        "peak_mb": round(peak, 1),
        "peak_delta_mb": round(peak - rss_imports, 1),
        "n_docs": len(gold),
    }


def main(argv: Optional[list] = None) -> None:
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("model")
    parser.add_argument("data_path")
    parser.add_argument("--n-docs", type=int, default=256)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--max-batch-items", type=int, default=None)
    args = parser.parse_args(argv)
    result = _child(args.model, args.data_path, args.n_docs, args.batch_size, args.threads, args.max_batch_items)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
