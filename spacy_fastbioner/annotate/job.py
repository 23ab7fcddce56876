"""`annotate()`: annotate collections of documents into a sharded, resumable
output folder, on this machine or on Ray. The Python API behind
`spacy fastbioner annotate`."""

import glob
import re
import sys
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import srsly

from .formats import DEFAULT_MAX_BYTES, FORMATS, InputSource, detect_format, read_collection_info, xml_format
from .local import ShardResult, ShardSettings
from .lock import OutputLock, OutputLocked
from .progress import Monitor, Progress
from .shards import (
    MANIFEST_VERSION,
    Manifest,
    RunMismatch,
    Shard,
    input_fingerprints,
    plan_shards,
    sha256_folder,
    write_atomically,
)
from .writers import OUTPUT_FORMATS

BACKENDS = ("local", "ray")
HTML_DIR = "html"


class AnnotateError(ValueError):
    """A problem that stops the run before it starts: no model, no inputs,
    bad settings, or an output folder of another model, input or settings."""


def find_inputs(patterns: Sequence[Union[str, Path]]) -> List[Path]:
    """Expand files, folders (every file inside, recursively, hidden ones
    excepted) and glob patterns into a sorted list of files.

    patterns (Sequence[Union[str, Path]]): What the user gave.
    RETURNS (List[Path]): The files, each once, in the order given (a
        folder's or pattern's files sorted).
    """
    files: List[Path] = []
    for pattern in map(str, patterns):
        path = Path(pattern)
        if path.is_file():
            found = [path]
        elif path.is_dir():
            found = sorted(
                p
                for p in path.rglob("*")
                if p.is_file() and not any(part.startswith(".") for part in p.relative_to(path).parts)
            )
        else:
            found = sorted(Path(p) for p in glob.glob(pattern, recursive=True) if Path(p).is_file())
        if not found:
            raise AnnotateError(f"input {pattern!r} matches no file; expected files, folders or glob patterns")
        files.extend(p for p in found if p not in files)
    return files


def resolve_model(model: str) -> Tuple[Path, Dict[str, Any]]:
    """Find a pipeline's folder and its meta.json without loading it.

    model (str): A pipeline folder or an installed package name.
    RETURNS (Tuple[Path, Dict[str, Any]]): The folder and its meta.
    """
    from spacy import util

    path = Path(model)
    if not path.exists() and util.is_package(model):
        path = Path(util.get_package_path(model))
        inner = [p for p in path.iterdir() if p.is_dir() and (p / "config.cfg").is_file()]
        path = inner[0] if inner else path
    if not path.is_dir():
        raise AnnotateError(
            f"Cannot find the model {model!r}: expected a pipeline folder or the name of an installed pipeline package"
        )
    if not (path / "config.cfg").is_file():
        raise AnnotateError(f"{path} is not a spaCy pipeline: it has no config.cfg")
    meta_path = path / "meta.json"
    meta = srsly.read_json(meta_path) if meta_path.is_file() else {}
    return path, meta


# The packages whose version can change a runtime's numbers, by a word of its architecture's name.
_RUNTIME_PACKAGES = (("Onnx", "onnxruntime"), ("OpenVino", "openvino"), ("", "torch"))


def describe_runtime(model_path: Path) -> Dict[str, Any]:
    """The transformer architectures of a pipeline's config and the version of
    the library that runs them (torch, onnxruntime or openvino), for the
    manifest: a resume on another runtime can change the numbers.

    model_path (Path): The pipeline folder.
    RETURNS (Dict[str, Any]): "architectures" and the runtime's "versions".
    """
    from importlib.metadata import PackageNotFoundError, version

    from thinc.api import Config

    config = Config().from_disk(model_path / "config.cfg", interpolate=False)
    names: List[str] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            name = node.get("@architectures")
            if isinstance(name, str) and "Transformer" in name and name not in names:
                names.append(name)
            for value in node.values():
                walk(value)

    walk(config.get("components", {}))
    versions: Dict[str, Optional[str]] = {}
    for word, package in _RUNTIME_PACKAGES:
        if names and any(word in name for name in names):
            try:
                versions[package] = version(package)
            except PackageNotFoundError:
                versions[package] = None
            break
    return {"architectures": names, "versions": versions}


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name)[:80]


def annotate(
    model: str,
    inputs: Sequence[Union[str, Path]],
    output: Union[str, Path],
    *,
    input_format: Optional[str] = None,
    id_field: str = "id",
    text_fields: Sequence[str] = ("text",),
    formats: Sequence[str] = ("jsonl",),
    shard_size: int = 1000,
    min_confidence: float = 0.0,
    batch_size: int = 64,
    max_batch_items: Optional[int] = None,
    n_process: int = 1,
    n_threads: Optional[int] = None,
    isolate_shards: bool = False,
    html: int = 0,
    backend: str = "local",
    address: Optional[str] = None,
    resume: bool = False,
    force: bool = False,
    max_doc_bytes: int = DEFAULT_MAX_BYTES,
    abbreviations: Optional[bool] = None,
    quiet: bool = False,
    monitor: Optional[Monitor] = None,
) -> Dict[str, Any]:
    """Annotate every document of the inputs, shard by shard, into `output`.
    Running it again on the same output folder skips the finished shards and
    redoes an unfinished one.

    model (str): A pipeline folder or an installed package name.
    inputs (Sequence[Union[str, Path]]): Files, folders or glob patterns.
    output (Union[str, Path]): The output folder.
    input_format (Optional[str]): One of FORMATS for every input; by default
        each file's is guessed (`detect_format`).
    id_field (str): JSONL: the document id's field (dotted for nested ones).
    text_fields (Sequence[str]): JSONL: the text field(s), joined with a space.
    formats (Sequence[str]): Output formats, of OUTPUT_FORMATS.
    shard_size (int): Documents per shard.
    min_confidence (float): Drop entities of a lower confidence.
    batch_size (int): Passages per batch of `nlp.pipe`.
    max_batch_items (Optional[int]): The transformer's padded wordpieces per
        forward pass; None keeps the pipeline's own setting.
    n_process (int): Local: processes of `nlp.pipe`. Ray: actors.
    isolate_shards (bool): Local, one process: annotate each shard in a
        process forked for it, which returns its memory when it ends, so that
        memory stays flat over any number of shards (Linux); each such
        process runs n_threads torch threads (default 1). With n_process > 1
        the children are already fresh for each shard.
    n_threads (Optional[int]): torch threads per annotating process (default:
        torch's default for one local process, 1 for children and actors).
    html (int): Also write displaCy pages of the first `html` documents.
    backend (str): "local" or "ray".
    address (Optional[str]): Ray: the cluster's address; a local Ray when None.
    resume (bool): Require an earlier run's output folder to resume.
    force (bool): Resume although the batch size, max_batch_items or the
        runtime differ from the earlier run's (they can change the numbers).
    max_doc_bytes (int): The largest document read, in bytes (a line, a
        PubTator block, an XML or JSON document); a larger one goes to
        errors.jsonl with its id and size, and is never held whole.
    abbreviations (Optional[bool]): Add (True) or remove (False) the
        `fastbioner_abbreviations` component; None runs the pipeline as it is.
    quiet (bool): No progress bar.
    monitor (Optional[Monitor]): Called with (documents done, documents in
        the run, words done) when annotation starts and as it goes.
    RETURNS (Dict[str, Any]): The summary: n_shards, n_read, n_written,
        n_errors, n_skipped, n_deleted, n_entities, n_words, and the output
        files by format.
    RAISES (AnnotateError): Before any work, for what stops the run; among
        them another run writing to `output` (each run holds its lock).
    """
    output = Path(output)
    if max_doc_bytes < 1:
        raise AnnotateError(f"Invalid max doc bytes: {max_doc_bytes} (expected a positive integer)")
    _check_settings(input_format, formats, shard_size, batch_size, n_process, n_threads, backend, min_confidence)
    _check_isolation(isolate_shards, n_process, backend)
    if max_batch_items is not None and max_batch_items < 1:
        raise AnnotateError(f"Invalid max batch items: {max_batch_items} (expected a positive integer)")
    if resume and Manifest.read_header(output) is None:
        raise AnnotateError(f"--resume: {output} holds no earlier run (no manifest.jsonl)")
    if backend == "ray":
        try:
            import ray  # noqa: F401
        except ImportError:
            raise AnnotateError("The Ray backend needs Ray: pip install spacy-fastbioner[ray]") from None
    model_path, meta = resolve_model(model)
    files = find_inputs(inputs)
    sources = [InputSource(str(f), _format_of(f, input_format), id_field, tuple(text_fields)) for f in files]
    try:
        lock = OutputLock(output).acquire()
    except OutputLocked as err:
        raise AnnotateError(str(err)) from None
    with lock:  # released however the run ends; a killed run's lock is released by the kernel
        header = {
            "version": MANIFEST_VERSION,
            "model": {
                "name": f"{meta.get('lang', '')}_{meta.get('name', '')}",
                "version": meta.get("version"),
                "path": str(model_path),
                "fingerprint": sha256_folder(model_path),
            },
            "inputs": input_fingerprints(sources),
            "settings": {
                "formats": list(formats),
                "shard_size": shard_size,
                "min_confidence": float(min_confidence),
                "id_field": id_field,
                "text_fields": list(text_fields),
                "max_doc_bytes": max_doc_bytes,
            },
            # What can change the numbers of a resumed run's later shards (with the model's fingerprint).
            "run": {
                "batch_size": batch_size,
                "max_batch_items": max_batch_items,
                "runtime": describe_runtime(model_path),
                "abbreviations": abbreviations,
            },
        }
        try:
            manifest = Manifest.open(
                output, header, lambda: plan_shards(sources, shard_size, max_doc_bytes), force=force
            )
        except RunMismatch as err:
            raise AnnotateError(str(err)) from None
        settings = ShardSettings(
            tuple(formats), float(min_confidence), batch_size, max_batch_items, max_doc_bytes, abbreviations
        )
        pending = manifest.pending()
        starts = _global_starts(manifest.header)

        def pages_for(shard: Shard) -> int:
            """The displaCy pages of a shard: its documents among the first `html` of the run."""
            return max(0, min(html - starts[shard.input] - shard.start, shard.end - shard.start))

        total = sum(inp["n_records"] for inp in manifest.header["inputs"])
        done = total - sum(s.end - s.start for s in pending)

        def on_result(shard: Shard, result: ShardResult) -> None:
            _write_pages(output, shard, result.pages)
            manifest.commit(shard, result.outputs, result.errors, result.counts, result.deleted)

        if backend == "ray":
            from .ray import run_ray

            progress = Progress(total, done, quiet=quiet, monitor=monitor)

            def on_ray_result(shard: Shard, result: ShardResult) -> None:
                on_result(shard, result)
                progress.update(shard.end - shard.start, result.counts["n_words"])

            try:
                run_ray(
                    model,
                    pending,
                    sources,
                    settings,
                    address=address,
                    n_actors=n_process,
                    n_threads=n_threads or 1,
                    pages_for=pages_for,
                    on_result=on_ray_result,
                )
            finally:
                progress.close()
        elif pending:
            from ..util.threads import limit_threads
            from .local import load_pipeline, run_local

            try:
                nlp = load_pipeline(model, max_batch_items, max_doc_bytes, abbreviations)
            except (OSError, ValueError) as err:
                raise AnnotateError(f"Cannot load the pipeline {model!r}: {err}") from None
            restore_threads = limit_threads(n_process, n_threads, isolate_shards=isolate_shards)
            collections = [read_collection_info(s) if s.format.startswith("bioc") else None for s in sources]
            progress = Progress(total, done, quiet=quiet, monitor=monitor)  # after loading: words/s of annotation only
            try:
                run_local(
                    nlp,
                    pending,
                    sources,
                    collections,
                    settings,
                    n_process=n_process,
                    pages_for=pages_for,
                    on_result=on_result,
                    on_doc=progress.update,
                    isolate=isolate_shards,
                )
            finally:
                progress.close()
                restore_threads()  # the fork hook's limit is the run's, not the rest of the process's
        summary = manifest.finish()
        if html:
            _write_html_index(output)
        return summary


def _format_of(path: Path, input_format: Optional[str]) -> str:
    """The format of an input; an XML file must be PubMed or BioC XML."""
    try:
        if input_format in ("pubmed-xml", "bioc-xml"):
            found = xml_format(path)
            if found != input_format:
                raise ValueError(f"{path}: --input-format {input_format}, but the file is {found}")
            return found
        return input_format or detect_format(path)
    except ValueError as err:
        raise AnnotateError(str(err)) from None


def _check_settings(
    input_format: Optional[str],
    formats: Sequence[str],
    shard_size: int,
    batch_size: int,
    n_process: int,
    n_threads: Optional[int],
    backend: str,
    min_confidence: float,
) -> None:
    if input_format is not None and input_format not in FORMATS:
        raise AnnotateError(f"Unknown input format {input_format!r}: expected one of {', '.join(FORMATS)}")
    bad = [f for f in formats if f not in OUTPUT_FORMATS]
    if bad or not formats:
        raise AnnotateError(
            f"Unknown output format(s) {', '.join(bad) or '(none)'}: expected one or more of "
            f"{', '.join(OUTPUT_FORMATS)}"
        )
    if backend not in BACKENDS:
        raise AnnotateError(f"Unknown backend {backend!r}: expected one of {', '.join(BACKENDS)}")
    for name, value in (("shard size", shard_size), ("batch size", batch_size), ("n_process", n_process)):
        if value < 1:
            raise AnnotateError(f"Invalid {name} {value}: expected a positive integer")
    if n_threads is not None and n_threads < 1:
        raise AnnotateError(f"Invalid n_threads {n_threads}: expected a positive integer")
    if not 0.0 <= min_confidence <= 1.0:
        raise AnnotateError(f"Invalid min confidence {min_confidence}: expected a number in [0, 1]")


def _check_isolation(isolate_shards: bool, n_process: int, backend: str) -> None:
    from .isolated import can_isolate

    if not isolate_shards:
        return
    if backend != "local" or n_process != 1:
        raise AnnotateError(
            "isolate_shards is for the local backend with one process: with several processes (or Ray "
            "actors) each shard already runs in fresh processes"
        )
    if not can_isolate():
        raise AnnotateError(f"isolate_shards forks a process per shard, which needs Linux (this is {sys.platform})")


def _global_starts(header: Dict[str, Any]) -> List[int]:
    """The index, over all inputs, of each input's first record."""
    starts, total = [], 0
    for inp in header["inputs"]:
        starts.append(total)
        total += inp["n_records"]
    return starts


def _write_pages(output: Path, shard: Shard, pages: Sequence[Tuple[str, str]]) -> None:
    if not pages:
        return
    folder = output / HTML_DIR
    folder.mkdir(exist_ok=True)
    for k, (doc_id, page) in enumerate(pages):
        write_atomically(folder / f"{shard.id}-{k:04d}-{_safe(doc_id)}.html", page.encode("utf8"))


def _write_html_index(output: Path) -> None:
    folder = output / HTML_DIR
    pages = sorted(p.name for p in folder.glob("*.html") if p.name != "index.html") if folder.is_dir() else []
    items = "\n".join(f'<li><a href="{name}">{name[:-5]}</a></li>' for name in pages)
    index = (
        f'<!DOCTYPE html>\n<html><head><meta charset="utf-8"><title>annotate</title></head>'
        f"<body><h1>{len(pages)} annotated documents</h1><ul>\n{items}\n</ul></body></html>\n"
    )
    folder.mkdir(exist_ok=True)
    write_atomically(folder / "index.html", index.encode("utf8"))


__all__ = ["AnnotateError", "BACKENDS", "annotate", "find_inputs", "resolve_model"]
