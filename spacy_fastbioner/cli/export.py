"""`spacy fastbioner export`: a copy of a trained pipeline whose transformer
runs in a faster inference runtime (ONNX Runtime), fp32 or int8."""

from pathlib import Path
from typing import Optional

from spacy.cli._util import Arg, Opt
from wasabi import msg

from ._util import fastbioner_cli


@fastbioner_cli.command("export")
def export_cli(
    # fmt: off
    model: str = Arg(..., help="Trained fp32 pipeline (path or package), e.g. a distilled student"),
    output_path: Path = Arg(..., help="Output directory for the exported pipeline"),
    runtime: str = Opt("onnx", "--runtime", "-r", help="Inference runtime of the transformer: onnx (ONNX Runtime)"),
    int8: bool = Opt(
        True, "--int8/--fp32", help="Quantise the Linear layers to int8 (dynamic quantisation), or keep fp32"
    ),
    per_channel: bool = Opt(
        True, "--per-channel/--per-tensor", help="int8 scales per output channel (more accurate) or one per matrix"
    ),
    max_batch_items: Optional[int] = Opt(
        None,
        "--max-batch-items",
        min=1,
        help="Set the transformer's max_batch_items, the padded size of its length-sorted sub-batches (e.g. 512 on CPU); kept when unset",
    ),
    calibration: Optional[Path] = Opt(
        None,
        "--calibration",
        help="int8: training docs (.spacy or IOB .tsv) on which to smooth the Linear layers' inputs before quantisation (SmoothQuant); plain dynamic int8 when unset",
        exists=True,
        dir_okay=False,
    ),
    n_calibration: int = Opt(512, "--n-calibration", min=1, help="Docs of --calibration to use (its first ones)"),
    smooth_alpha: float = Opt(
        0.9, "--smooth-alpha", min=0.0, max=1.0, help="How much of the input range moves into the weights (0-1)"
    ),
    verify: Optional[Path] = Opt(
        None,
        "--verify",
        help="Gold docs (.spacy or IOB .tsv) to annotate with both pipelines: count the docs whose entities differ and the largest logit difference",
        exists=True,
        dir_okay=False,
    ),
    # fmt: on
) -> None:
    """Export the transformer of a trained pipeline to ONNX and save the
    pipeline, which `spacy.load` returns with the encoder in ONNX Runtime and
    the same tokenizer, span getter, NER head and decoding. Needs
    `pip install 'spacy-fastbioner[onnx]'`."""
    from ..disk_size import size_on_disk
    from ..loading import load_pipeline
    from ..runtime import RUNTIMES, export_pipeline

    if runtime not in RUNTIMES:
        msg.fail(f"Unknown --runtime {runtime!r}: expected one of {', '.join(RUNTIMES)}", exits=1)
    try:
        import onnx  # noqa: F401
        import onnxruntime  # noqa: F401
    except ImportError:
        msg.fail("Exporting needs onnx and onnxruntime: pip install 'spacy-fastbioner[onnx]'", exits=1)
    if calibration is not None and not int8:
        msg.fail("--calibration smooths the int8 export: leave it out with --fp32", exits=1)
    try:
        nlp = load_pipeline(model)
        calibration_docs = None
        if calibration is not None:
            from ..benchmark.data import load_gold_docs

            calibration_docs = load_gold_docs(calibration, nlp.vocab)[:n_calibration]
        exported = export_pipeline(
            nlp,
            runtime=runtime,
            int8=int8,
            per_channel=per_channel,
            max_batch_items=max_batch_items,
            calibration=calibration_docs,
            smooth_alpha=smooth_alpha,
        )
    except (OSError, ValueError) as err:
        msg.fail(f"Cannot export the pipeline {model!r}", str(err), exits=1)
    output_path.mkdir(parents=True, exist_ok=True)
    exported.to_disk(output_path)
    before, after = size_on_disk(model), size_on_disk(output_path)
    sizes = f" ({before / 2**20:.1f} MB -> {after / 2**20:.1f} MB on disk)" if before and after else ""
    kind = f"int8, smoothed on {len(calibration_docs)} docs" if calibration_docs else ("int8" if int8 else "fp32")
    msg.good(f"Saved the {runtime} {kind} pipeline to {output_path}{sizes}")
    if verify is not None:
        from ..benchmark.data import load_gold_docs
        from ..runtime.verify import compare_pipelines

        found = compare_pipelines(nlp, load_pipeline(output_path), load_gold_docs(verify, nlp.vocab))
        line = (
            f"{found['docs_with_other_entities']} of {found['docs']} docs with other entities than "
            f"the PyTorch pipeline ({found['entities']} entities); largest logit difference "
            f"{found['max_logit_diff']:.2g}"
        )
        if found["docs_with_other_entities"] and not int8:
            msg.warn(line)
        else:
            msg.info(line)
