"""Sharded, resumable output: the plan, atomic shard files and the manifest.

The input files are cut into shards of `shard_size` consecutive records
(documents and unreadable documents alike). A shard's output files are each
written to a temporary file, flushed to disk and renamed into place; only
then is a line appended to `manifest.jsonl` (input file, record range,
counts, each file's SHA-256). A run that is killed leaves at most a partial
temporary file or a torn last manifest line, both ignored: running the same
command again redoes exactly the shards that the manifest does not list (or
whose files no longer match their checksum), so the output holds every input
document exactly once.

The manifest's first line, the header, records the model's and the inputs'
fingerprints, the settings that shape the output (formats, shard size,
confidence threshold, fields, the bound on a document's size), the settings
that can change the numbers (`run`: batch size, max_batch_items, the
runtime), and the plan (where each shard starts). An output folder whose
header names another model, other inputs or other settings is refused
(`RunMismatch`); other `run` settings are refused too, unless forced, and each
shard's line records the `run` settings that made it.
"""

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

from .formats import InputSource, count_records
from .lock import LOCK
from .writers import EXTENSIONS

MANIFEST = "manifest.jsonl"
SHARDS_DIR = "shards"
ERRORS = "errors.jsonl"
SUMMARY = "summary.json"
MANIFEST_VERSION = 1


class RunMismatch(ValueError):
    """An output folder that belongs to another model, other inputs or other settings."""


@dataclass(frozen=True)
class Shard:
    """A range of consecutive records of one input file.

    id (str): "<input index>-<shard index>", zero-padded: the output's file stem.
    input (int): The index of the input file in the plan.
    start (int): The first record's index in the file.
    end (int): The index after the last record.
    byte (int): The byte offset of the first record.
    line (int): The line number of the first record.
    """

    id: str
    input: int
    start: int
    end: int
    byte: int
    line: int

    def to_dict(self) -> Dict[str, Any]:
        return {
            "id": self.id,
            "input": self.input,
            "start": self.start,
            "end": self.end,
            "byte": self.byte,
            "line": self.line,
        }


def sha256_file(path: Path, block: int = 1 << 20) -> str:
    """The SHA-256 of a file's bytes (as stored, e.g. still compressed)."""
    digest = hashlib.sha256()
    with Path(path).open("rb") as file_:
        while chunk := file_.read(block):
            digest.update(chunk)
    return digest.hexdigest()


def sha256_folder(path: Path) -> str:
    """The SHA-256 of a folder's files: their relative paths and bytes."""
    digest = hashlib.sha256()
    for file_ in sorted(p for p in Path(path).rglob("*") if p.is_file()):
        digest.update(str(file_.relative_to(path)).encode("utf8") + b"\0")
        digest.update(sha256_file(file_).encode("ascii"))
    return digest.hexdigest()


def input_fingerprints(sources: Sequence[InputSource]) -> List[Dict[str, Any]]:
    """For each input: its path, format, size and SHA-256."""
    return [
        {"path": s.path, "format": s.format, "size": Path(s.path).stat().st_size, "sha256": sha256_file(Path(s.path))}
        for s in sources
    ]


def plan_shards(sources: Sequence[InputSource], shard_size: int, max_bytes: int) -> List[Dict[str, Any]]:
    """Count each input's records (reading it once, without parsing) and cut
    it into shards.

    sources (Sequence[InputSource]): The inputs.
    shard_size (int): Records per shard.
    max_bytes (int): The bound on a document's size (as for reading).
    RETURNS (List[Dict[str, Any]]): Per input, "n_records" and "starts", the
        (index, byte, line) where each of its shards starts.
    """
    plans = []
    for source in sources:
        n, starts = count_records(source, shard_size, max_bytes)
        plans.append({"n_records": n, "starts": [list(s) for s in starts]})
    return plans


def shards_of(header: Dict[str, Any]) -> List[Shard]:
    """The shards of a manifest header's plan, in output order."""
    size = header["settings"]["shard_size"]
    shards = []
    for i, inp in enumerate(header["inputs"]):
        for k, (start, byte, line) in enumerate(inp["starts"]):
            shards.append(Shard(f"{i:05d}-{k:06d}", i, start, min(start + size, inp["n_records"]), byte, line))
    return shards


def write_atomically(path: Path, data: bytes) -> None:
    """Write a file so that it is either absent or complete: a temporary file
    in the same folder, flushed to disk, then renamed."""
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("wb") as file_:
        file_.write(data)
        file_.flush()
        os.fsync(file_.fileno())
    os.replace(tmp, path)


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


class Manifest:
    """The manifest of an output folder: its header and finished shards.

    output (Path): The output folder.
    header (Dict[str, Any]): The run's header (model, inputs, settings, plan).
    finished (Dict[str, Dict[str, Any]]): The finished shards' lines, by shard id.
    """

    def __init__(self, output: Path, header: Dict[str, Any], finished: Dict[str, Dict[str, Any]]) -> None:
        self.output, self.header, self.finished = output, header, finished
        self.run: Dict[str, Any] = dict(header.get("run") or {})

    @property
    def path(self) -> Path:
        return self.output / MANIFEST

    @classmethod
    def read_header(cls, output: Path) -> Optional[Dict[str, Any]]:
        """The header of an output folder's manifest, or None where there is none."""
        path = output / MANIFEST
        if not path.is_file():
            return None
        with path.open("rb") as file_:
            first = file_.readline()
        try:
            header = json.loads(first)
        except ValueError:
            raise RunMismatch(
                f"{path}:1: expected the manifest's header, a JSON object; the file is damaged "
                "(use another --output folder)"
            ) from None
        return header if isinstance(header, dict) else None

    @classmethod
    def open(
        cls,
        output: Path,
        header: Dict[str, Any],
        make_plan: Callable[[], List[Dict[str, Any]]],
        *,
        force: bool = False,
    ) -> "Manifest":
        """Start a new output folder, or reopen one of the same run: check its
        header, drop a torn last line and stale temporary files, and keep the
        finished shards whose files still match their checksums. The caller
        holds the folder's lock (`lock.py`).

        output (Path): The output folder; created if missing.
        header (Dict[str, Any]): The run's header without the plan: "version",
            "model", "inputs" (fingerprints), "settings", "run".
        make_plan (Callable[[], List[Dict[str, Any]]]): Returns the plan of
            each input (`plan_shards`); called only for a new folder.
        force (bool): Resume although the "run" settings differ.
        RETURNS (Manifest): The manifest.
        """
        output.mkdir(parents=True, exist_ok=True)
        path = output / MANIFEST
        old = cls.read_header(output)
        if old is None:
            if any(p for p in output.iterdir() if not p.name.endswith(".tmp") and p.name != LOCK):
                raise RunMismatch(
                    f"{output} is not empty and has no {MANIFEST}; expected a new folder or the "
                    "output folder of an earlier run of the same command"
                )
            plans = make_plan()
            header = {**header, "inputs": [{**inp, **plan} for inp, plan in zip(header["inputs"], plans)]}
            write_atomically(path, (json.dumps(header) + "\n").encode("utf8"))
            (output / SHARDS_DIR).mkdir(exist_ok=True)
            return cls(output, header, {})
        check_same_run(old, header, output, force=force)
        run = header.get("run")
        header = old  # it holds the plan
        lines = path.read_bytes().split(b"\n")
        finished: Dict[str, Dict[str, Any]] = {}
        good = len(lines[0]) + 1
        for raw in lines[1:]:
            try:
                entry = json.loads(raw)
            except ValueError:
                break  # a torn last line: its shard is redone
            if not isinstance(entry, dict) or "id" not in entry:
                break
            finished[entry["id"]] = entry
            good += len(raw) + 1
        if good < len(b"\n".join(lines)):
            with path.open("r+b") as file_:
                file_.truncate(good)
        shards_dir = output / SHARDS_DIR
        shards_dir.mkdir(exist_ok=True)
        for tmp in list(shards_dir.glob("*.tmp")) + list(output.glob("*.tmp")):
            tmp.unlink()
        manifest = cls(output, header, {})
        manifest.run = dict(run or {})  # this run's, recorded in the shards it writes
        manifest.finished = {k: v for k, v in finished.items() if manifest._intact(v)}
        return manifest

    def _intact(self, entry: Dict[str, Any]) -> bool:
        for info in entry.get("files", {}).values():
            path = self.output / SHARDS_DIR / info["name"]
            if not path.is_file() or sha256_file(path) != info["sha256"]:
                return False
        return True

    def pending(self) -> List[Shard]:
        """The shards still to do, in order."""
        return [shard for shard in shards_of(self.header) if shard.id not in self.finished]

    def commit(
        self,
        shard: Shard,
        outputs: Dict[str, str],
        errors: Sequence[Dict[str, Any]],
        counts: Dict[str, int],
        deleted: Sequence[str] = (),
    ) -> Dict[str, Any]:
        """Write a finished shard's files atomically, then record it.

        shard (Shard): The shard.
        outputs (Dict[str, str]): The rendered output, by output format.
        errors (Sequence[Dict[str, Any]]): Its errors.jsonl records.
        counts (Dict[str, int]): "n_written", "n_errors", "n_skipped",
            "n_entities", "n_words".
        deleted (Sequence[str]): PMIDs of its PubMed DeleteCitation records.
        RETURNS (Dict[str, Any]): The manifest line.
        """
        files: Dict[str, Dict[str, str]] = {}
        named = dict(outputs)
        if errors:
            named["errors"] = "".join(json.dumps(e, ensure_ascii=False) + "\n" for e in errors)
        for fmt, text in named.items():
            name = shard.id + EXTENSIONS[fmt]
            data = text.encode("utf8")
            write_atomically(self.output / SHARDS_DIR / name, data)
            files[fmt] = {"name": name, "sha256": hashlib.sha256(data).hexdigest()}
        _fsync_dir(self.output / SHARDS_DIR)
        source = self.header["inputs"][shard.input]
        entry = {
            "id": shard.id,
            "input": source["path"],
            "start": shard.start,
            "end": shard.end,
            "n_read": shard.end - shard.start,
            "n_skipped": 0,
            **counts,
            "files": files,
            "run": self.run,
        }
        if deleted:
            entry["deleted"] = list(deleted)
        if entry["n_read"] != counts["n_written"] + counts["n_errors"] + entry["n_skipped"]:
            raise AssertionError(
                f"shard {shard.id}: read {entry['n_read']} records, but wrote "
                f"{counts['n_written']}, {counts['n_errors']} errors and skipped {entry['n_skipped']}"
            )
        with self.path.open("ab") as file_:
            file_.write((json.dumps(entry) + "\n").encode("utf8"))
            file_.flush()
            os.fsync(file_.fileno())
        self.finished[shard.id] = entry
        return entry

    def finish(self) -> Dict[str, Any]:
        """After the last shard: gather the shards' errors into errors.jsonl
        and write summary.json with the totals.

        RETURNS (Dict[str, Any]): The summary.
        """
        shards = shards_of(self.header)
        missing = [s.id for s in shards if s.id not in self.finished]
        if missing:
            raise ValueError(f"cannot finish: {len(missing)} shard(s) not done, e.g. {missing[0]}")
        entries = [self.finished[s.id] for s in shards]
        errors = []
        for entry in entries:
            info = entry["files"].get("errors")
            if info:
                errors.append((self.output / SHARDS_DIR / info["name"]).read_bytes())
        write_atomically(self.output / ERRORS, b"".join(errors))
        keys = ("n_read", "n_written", "n_errors", "n_skipped", "n_entities", "n_words")
        totals = {key: sum(e.get(key, 0) for e in entries) for key in keys}
        summary = {
            "n_shards": len(entries),
            **totals,
            "n_deleted": sum(len(e.get("deleted", ())) for e in entries),
            "outputs": {
                fmt: [e["files"][fmt]["name"] for e in entries if fmt in e["files"]]
                for fmt in self.header["settings"]["formats"]
            },
        }
        write_atomically(self.output / SUMMARY, (json.dumps(summary, indent=2) + "\n").encode("utf8"))
        return summary


def check_same_run(old: Dict[str, Any], new: Dict[str, Any], output: Path, *, force: bool = False) -> None:
    """Refuse to resume a run of another model, on other inputs or with other
    settings; with other run settings (batch size, max_batch_items, runtime),
    unless `force`."""
    if old.get("version") != MANIFEST_VERSION:
        raise RunMismatch(
            f"{output}/{MANIFEST}: manifest version {old.get('version')!r}, expected "
            f"{MANIFEST_VERSION}; use another --output folder"
        )
    if old["model"]["fingerprint"] != new["model"]["fingerprint"]:
        raise RunMismatch(
            f"{output} holds the output of another model ({_model_name(old)}, fingerprint "
            f"{old['model']['fingerprint'][:12]}), not of {_model_name(new)} (fingerprint "
            f"{new['model']['fingerprint'][:12]}); use another --output folder"
        )
    if _inputs_key(old) != _inputs_key(new):
        raise RunMismatch(
            f"{output} holds the output of other inputs ({_describe(old)}), not of "
            f"{_describe(new)}; use another --output folder"
        )
    if old["settings"] != new["settings"]:
        diff = {k: (old["settings"].get(k), v) for k, v in new["settings"].items() if old["settings"].get(k) != v}
        raise RunMismatch(
            f"{output} was written with other settings ({', '.join(f'{k}: {a!r} then, {b!r} now' for k, (a, b) in diff.items())}); "
            "use the same settings to resume, or another --output folder"
        )
    old_run, new_run = old.get("run") or {}, new.get("run") or {}
    if old_run != new_run and not force:
        keys = sorted(set(old_run) | set(new_run))
        changes = ", ".join(
            f"{k}: {old_run.get(k)!r} then, {new_run.get(k)!r} now" for k in keys if old_run.get(k) != new_run.get(k)
        )
        raise RunMismatch(
            f"{output} was written with other run settings, which can change the predictions ({changes}); "
            "use the same settings to resume, --force to resume with these (each shard's manifest line "
            "records its run settings), or another --output folder"
        )


def _inputs_key(header: Dict[str, Any]) -> List[Tuple[str, str]]:
    return [(inp["sha256"], inp["format"]) for inp in header["inputs"]]


def _model_name(header: Dict[str, Any]) -> str:
    return f"{header['model'].get('name')} {header['model'].get('version')}"


def _describe(header: Dict[str, Any]) -> str:
    paths = [inp["path"] for inp in header["inputs"]]
    return ", ".join(paths[:3]) + (f" and {len(paths) - 3} more" if len(paths) > 3 else "")
