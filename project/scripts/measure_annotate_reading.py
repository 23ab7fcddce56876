"""Measure how `annotate` reads its inputs: time and peak memory of planning
and reading every shard (no model), for 1x, 2x and 4x the same input, with
the reading code of a git revision (default HEAD, before issue 27) and with
the working tree's. Reading that is linear takes about 2x and 4x the time of
1x; reading that decompresses everything before each shard again grows faster.

    python project/scripts/measure_annotate_reading.py --output results/annotate_reading.json

Each measurement runs in a fresh process: peak memory is its peak resident
size (Linux), the interpreter's and the imports' included, and its growth
over the size after the imports.
"""

import argparse
import gzip
import json
import os
import subprocess
import sys
import tempfile
import time
from itertools import islice
from pathlib import Path
from typing import Any, Dict, List

REPO = Path(__file__).resolve().parents[2]
# The files that held the reading code before issue 27 (they import only each other).
OLD_FILES = ("formats.py", "bioc_input.py", "records.py")


def make_input(folder: Path, fmt: str, n_docs: int) -> Path:
    """A synthetic collection of n_docs abstract-sized documents."""
    import random

    rng = random.Random(n_docs)
    words = [f"w{k}" for k in range(5000)] + ["aspirin", "lithium", "cancer", "diabetes"]
    # Varied words, so that gzip compresses about as much as it does real abstracts.
    docs = [(f"D{i}", " ".join(rng.choice(words) for _ in range(200)) + ".") for i in range(n_docs)]
    if fmt == "jsonl.gz":
        path = folder / f"in-{n_docs}.jsonl.gz"
        data = "".join(json.dumps({"id": i, "text": t}) + "\n" for i, t in docs)
    elif fmt == "bioc-xml.gz":
        path = folder / f"in-{n_docs}.xml.gz"
        data = "<?xml version='1.0' encoding='utf-8'?>\n<collection><source>x</source><date/><key/>"
        data += "".join(
            f"<document><id>{i}</id><passage><offset>0</offset><text>{t}</text></passage></document>\n" for i, t in docs
        )
        data += "</collection>\n"
    else:  # bioc-json
        path = folder / f"in-{n_docs}.json"
        obj = {"source": "x", "date": "", "key": "", "infons": {}, "documents": []}
        obj["documents"] = [
            {
                "id": i,
                "infons": {},
                "passages": [
                    {"offset": 0, "infons": {}, "text": t, "sentences": [], "annotations": [], "relations": []}
                ],
                "annotations": [],
                "relations": [],
            }
            for i, t in docs
        ]
        path.write_text(json.dumps(obj), encoding="utf8")
        return path
    with gzip.open(path, "wt", encoding="utf8") as file_:
        file_.write(data)
    return path


def input_format(fmt: str) -> str:
    return {"jsonl.gz": "jsonl", "bioc-xml.gz": "bioc-xml", "bioc-json": "bioc-json"}[fmt]


def measure_one(code: str, path: str, fmt: str, shard_size: int) -> Dict[str, Any]:
    """Plan and read every shard with one revision's code, in this process
    (imports done before the clock starts; memory also as the growth over
    the resident size after them)."""
    if code == "new":
        from spacy_fastbioner.annotate.formats import InputSource, count_records
        from spacy_fastbioner.annotate.local import ShardReader
        from spacy_fastbioner.annotate.shards import Shard
    else:
        from old_annotate.formats import InputSource, count_records, read_records  # type: ignore[import-not-found]
    baseline = _rss_mb()
    start = time.perf_counter()
    if code == "new":
        source = InputSource(path, fmt)
        n, starts = count_records(source, shard_size)
        reader = ShardReader([source])
        n_read = 0
        for k, (index, byte, line) in enumerate(starts):
            n_read += len(reader.read(Shard(str(k), 0, index, min(index + shard_size, n), byte, line)))
        reader.close()
    else:
        source = InputSource(path, fmt)
        n, starts = count_records(source, shard_size)
        n_read = 0
        for index, byte, line in starts:  # as `read_shard` did: from the shard's first byte
            records = read_records(source, start_byte=byte, start_index=index, start_line=line)
            n_read += len(list(islice(records, min(index + shard_size, n) - index)))
    seconds = time.perf_counter() - start
    peak = _peak_mb()
    return {
        "n_records": n,
        "n_read": n_read,
        "seconds": round(seconds, 3),
        "peak_mb": round(peak, 1),
        "peak_over_imports_mb": round(peak - baseline, 1),
    }


def _peak_mb() -> float:
    """This process's peak resident size (VmHWM; unlike ru_maxrss, it does
    not start from the parent's size at fork), in MB."""
    with open("/proc/self/status") as file_:
        line = next(line for line in file_ if line.startswith("VmHWM:"))
    return int(line.split()[1]) / 1024


def _rss_mb() -> float:
    """This process's resident size now (Linux /proc), in MB."""
    with open("/proc/self/statm") as file_:
        return int(file_.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def export_old(revision: str, folder: Path) -> Path:
    """The old reading modules, as the package `old_annotate`."""
    package = folder / "old_annotate"
    package.mkdir()
    (package / "__init__.py").write_text("")
    for name in OLD_FILES:
        source = subprocess.run(
            ["git", "show", f"{revision}:spacy_fastbioner/annotate/{name}"],
            cwd=REPO,
            check=True,
            capture_output=True,
            text=True,
            timeout=60,
        ).stdout
        (package / name).write_text(source)
    return folder


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--output", type=Path, default=REPO / "results" / "annotate_reading.json")
    parser.add_argument("--revision", default="HEAD", help="The git revision of the old reading code")
    parser.add_argument("--n-docs", type=int, default=1500, help="Documents of the 1x input")
    parser.add_argument("--shard-size", type=int, default=100)
    parser.add_argument("--formats", default="jsonl.gz,bioc-xml.gz,bioc-json")
    parser.add_argument("--one", nargs=4, metavar=("CODE", "PATH", "FORMAT", "SHARD_SIZE"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        code, path, fmt, shard_size = args.one
        print(json.dumps(measure_one(code, path, fmt, int(shard_size))))
        return
    results: List[Dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp:
        folder = export_old(args.revision, Path(tmp))
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), str(folder)])}
        for fmt in args.formats.split(","):
            for scale in (1, 2, 4):
                path = make_input(Path(tmp), fmt, args.n_docs * scale)
                for code in ("old", "new"):
                    run = subprocess.run(
                        [sys.executable, __file__, "--one", code, str(path), input_format(fmt), str(args.shard_size)],
                        env=env,
                        check=True,
                        capture_output=True,
                        text=True,
                        timeout=3600,
                    )
                    row = {"format": fmt, "scale": scale, "code": code, "bytes": path.stat().st_size}
                    row.update(json.loads(run.stdout.strip().splitlines()[-1]))
                    results.append(row)
                    print(json.dumps(row), flush=True)
    for row in results:  # time relative to the same code's 1x
        base = next(r for r in results if (r["format"], r["code"], r["scale"]) == (row["format"], row["code"], 1))
        row["time_vs_1x"] = round(row["seconds"] / max(base["seconds"], 1e-9), 2)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    report = {
        "command": "python project/scripts/measure_annotate_reading.py " + " ".join(sys.argv[1:]),
        "revision_old": args.revision,
        "n_docs_1x": args.n_docs,
        "shard_size": args.shard_size,
        "cpu_count": os.cpu_count(),
        "results": results,
    }
    args.output.write_text(json.dumps(report, indent=2) + "\n", encoding="utf8")
    print(f"Saved {args.output}")


if __name__ == "__main__":
    main()
