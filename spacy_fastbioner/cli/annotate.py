"""`spacy fastbioner annotate MODEL INPUT... --output DIR`: annotate
collections into a sharded, resumable output folder."""

from pathlib import Path
from typing import List, Optional

from spacy.cli._util import Arg, Opt
from wasabi import msg

from ._util import fastbioner_cli

# The default of --max-doc-bytes (annotate.formats.DEFAULT_MAX_BYTES, not
# imported here: commands keep their heavy imports in their bodies).
DEFAULT_MAX_BYTES = 16 * 2**20


def _split(value: str) -> List[str]:
    return [part.strip() for part in value.split(",") if part.strip()]


@fastbioner_cli.command("annotate")
def annotate_cli(
    # fmt: off
    model: str = Arg(..., help="Pipeline: a folder or an installed package name"),
    inputs: List[str] = Arg(..., help="Input files, folders or glob patterns (plain or .gz)"),
    output: Path = Opt(
        ...,
        "--output",
        "-o",
        help="Output folder (shards, manifest.jsonl, errors.jsonl, summary.json)",
        file_okay=False,
    ),
    input_format: Optional[str] = Opt(
        None,
        "--input-format",
        "-i",
        help="text, jsonl, pubtator, pubmed-xml, bioc-xml or bioc-json; guessed from each file's name (and an XML file's root element) by default",
    ),
    id_field: str = Opt("id", "--id-field", help="JSONL: the id field (a.b for nested objects)"),
    text_field: str = Opt(
        "text",
        "--text-field",
        help="JSONL: the text field; several, comma-separated, are joined with a space (e.g. title,abstract)",
    ),
    formats: str = Opt("jsonl", "--format", "-f", help="Output formats, comma-separated: jsonl, pubtator, bioc"),
    min_confidence: float = Opt(
        0.0,
        "--min-confidence",
        help="Drop entities whose confidence (mean probability of their tokens' decoded tags) is lower",
    ),
    shard_size: int = Opt(
        1000, "--shard-size", help="Documents per shard: the unit that is written atomically and resumed"
    ),
    batch_size: int = Opt(64, "--batch-size", "-b", help="Texts per batch of nlp.pipe (batches are sorted by length)"),
    max_batch_items: Optional[int] = Opt(
        None,
        "--max-batch-items",
        help="The transformer's padded wordpieces per forward pass (default: the pipeline's; 4096 suits fp32, 512 int8)",
    ),
    abbreviations: Optional[bool] = Opt(
        None,
        "--abbreviations/--no-abbreviations",
        help="Add (or remove) the fastbioner_abbreviations component: each abbreviation's mentions take its long form's entity (default: the pipeline as it is)",
    ),
    n_process: int = Opt(1, "--n-process", "-n", help="Local: processes of nlp.pipe. Ray: actors"),
    n_threads: Optional[int] = Opt(
        None,
        "--n-threads",
        "-t",
        help="torch threads per annotating process (default: torch's for one process, 1 for each child, actor or isolated shard)",
    ),
    isolate_shards: bool = Opt(
        False,
        "--isolate-shards",
        help="One process: annotate each shard in a process forked for it (with --n-threads, default 1), so that memory stays flat over any number of shards (Linux)",
    ),
    html: int = Opt(0, "--html", help="Also write displaCy pages of the first N documents to OUTPUT/html"),
    backend: str = Opt("local", "--backend", help="local, or ray (pip install spacy-fastbioner[ray])"),
    address: Optional[str] = Opt(
        None, "--address", help="Ray: the cluster's address (e.g. auto, or HOST:6379); a local Ray when unset"
    ),
    resume: bool = Opt(
        False,
        "--resume",
        help="Resume an earlier run into OUTPUT (running the same command again resumes too; this also fails if there is nothing to resume)",
    ),
    force: bool = Opt(
        False,
        "--force",
        help="Resume although --batch-size, --max-batch-items or the runtime differ from the earlier run's (they can change the predictions; each shard's manifest line records its own)",
    ),
    max_doc_bytes: int = Opt(
        DEFAULT_MAX_BYTES,
        "--max-doc-bytes",
        help="The largest document read, in bytes (a line, a PubTator block, an XML or JSON document); a larger one goes to errors.jsonl with its id and size, and is never held whole",
    ),
    quiet: bool = Opt(False, "--quiet", "-q", help="No progress bar, for logs"),
    # fmt: on
) -> None:
    """Annotate documents (PubMed XML, PubTator, BioC XML/JSON, JSONL or plain
    text, .gz too) into shards of JSONL, PubTator or BioC XML, with character offsets
    of the original text and a confidence per entity. The output is written
    shard by shard, atomically, with a manifest: run the same command again
    to resume after an interruption. Unreadable documents go to
    OUTPUT/errors.jsonl and the run goes on."""
    from ..annotate import AnnotateError, annotate

    try:
        summary = annotate(
            model,
            inputs,
            output,
            input_format=input_format,
            id_field=id_field,
            text_fields=_split(text_field),
            formats=_split(formats),
            shard_size=shard_size,
            min_confidence=min_confidence,
            batch_size=batch_size,
            max_batch_items=max_batch_items,
            n_process=n_process,
            n_threads=n_threads,
            isolate_shards=isolate_shards,
            html=html,
            backend=backend,
            address=address,
            resume=resume,
            force=force,
            max_doc_bytes=max_doc_bytes,
            abbreviations=abbreviations,
            quiet=quiet,
        )
    except AnnotateError as err:
        msg.fail(str(err), exits=1)
    skipped = (
        f"; {summary['n_skipped']:,} skipped (PubMed DeleteCitation, in manifest.jsonl)" if summary["n_skipped"] else ""
    )
    msg.good(
        f"Annotated {summary['n_written']:,} of {summary['n_read']:,} documents into {output} "
        f"({summary['n_entities']:,} entities, {summary['n_shards']} shards); "
        f"{summary['n_errors']:,} in {output / 'errors.jsonl'}{skipped}"
    )


@fastbioner_cli.command("annotate-benchmark")
def annotate_benchmark_cli(
    # fmt: off
    models: List[str] = Arg(..., help="Pipelines to compare, each LABEL=MODEL (a folder or package) or MODEL"),
    data: Path = Opt(
        ...,
        "--data",
        "-d",
        help="One text per line, e.g. assets/raw/unlabelled-abstracts.txt",
        exists=True,
        dir_okay=False,
    ),
    output_dir: Path = Opt(
        ..., "--output", "-o", help="Output folder for scaling.json and scaling.md", file_okay=False
    ),
    n_docs: int = Opt(8692, "--n-docs", "-n", min=1, help="Annotate the first N texts"),
    batch_size: int = Opt(64, "--batch-size", "-b", min=1, help="--batch-size of the annotate runs"),
    shard_size: int = Opt(1000, "--shard-size", min=1, help="--shard-size of the annotate runs"),
    max_batch_items: Optional[int] = Opt(
        None, "--max-batch-items", min=1, help="--max-batch-items of the annotate runs (default: each pipeline's)"
    ),
    settings: str = Opt(
        "1x1,2x1,1x2",
        "--settings",
        help="Comma-separated PROCESSESxTHREADS settings, each run in a fresh process; 1xTi: one process, each shard in a process forked for it",
    ),
    # fmt: on
) -> None:
    """Measure `annotate` at 1 process x 1 thread, 2 processes x 1 thread and
    1 process x 2 threads: words/s, peak memory per process at 10%, 50% and
    100% of the documents, the scaling ratio, and the core-hours and cores
    that PubMed (36M abstracts, about 9B words) would take."""
    from ..benchmark.scaling import parse_settings, run_scaling_benchmark

    try:
        setting_list = parse_settings(settings)
    except ValueError as err:
        msg.fail(str(err), exits=1)
    pairs = []
    for item in models:
        label, sep, model = item.partition("=")
        pairs.append((label, model) if sep else (Path(item).name or item, item))
    results = run_scaling_benchmark(
        pairs,
        data,
        output_dir,
        n_docs=n_docs,
        batch_size=batch_size,
        shard_size=shard_size,
        max_batch_items=max_batch_items,
        settings=setting_list,
    )
    for label, entry in results["models"].items():
        ratios = ", ".join(f"{k}: {v:.2f}x" for k, v in entry.get("scaling", {}).items())
        msg.info(f"{label}: {ratios}")
    msg.good(f"Saved {output_dir / 'scaling.json'} and {output_dir / 'scaling.md'}")
