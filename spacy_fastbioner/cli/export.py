"""`spacy fastbioner export`: a copy of a trained pipeline whose transformer
runs in a faster inference runtime (ONNX Runtime or OpenVINO), fp32 or int8;
by default (`--runtime auto`) the fastest batch-invariant form for this CPU,
timed on this machine (runtime/auto.py)."""

import importlib.util
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
    runtime: str = Opt(
        "auto",
        "--runtime",
        "-r",
        help="Inference runtime of the transformer: auto (export the candidate forms for this CPU's instruction sets, time them here, keep the fastest batch-invariant one within 0.3 dev F of fp32; needs --calibration, scores on --dev), onnx (ONNX Runtime) or openvino (OpenVINO; its int8 needs --calibration)",
    ),
    int8: bool = Opt(
        True,
        "--int8/--fp32",
        help="Quantise to int8 (onnx: dynamic by default, see --int8-scheme; openvino: static, NNCF), or keep fp32",
    ),
    int8_scheme: Optional[str] = Opt(
        None,
        "--int8-scheme",
        help="onnx: dynamic (the default; activation scales per call, so a document's entities can depend on its batch: NOT batch-invariant) or static (scales calibrated on --calibration, batch-invariant); openvino: static only",
    ),
    dev: Optional[Path] = Opt(
        None,
        "--dev",
        help="auto: gold docs (.spacy or IOB .tsv) to score each candidate on; without them the choice is by speed alone",
        exists=True,
        dir_okay=False,
    ),
    n_timing: int = Opt(
        48,
        "--n-timing",
        min=1,
        help="auto: docs of --calibration to time each candidate on (two passes, the second timed)",
    ),
    per_channel: bool = Opt(
        True, "--per-channel/--per-tensor", help="int8 scales per output channel (more accurate) or one per matrix"
    ),
    reduce_range: bool = Opt(
        False,
        "--7bit-weights",
        help="onnx int8: 7-bit weights, which cannot saturate the 16-bit sums of int8 kernels on CPUs without VNNI (auto tries both there)",
    ),
    ffn_fp32: bool = Opt(
        False,
        "--ffn-fp32",
        help="onnx static int8: keep the feed-forward output layers (whose inputs have the widest outliers) in fp32",
    ),
    max_batch_items: Optional[int] = Opt(
        None,
        "--max-batch-items",
        min=1,
        help="Set the transformer's max_batch_items, the padded size of its length-sorted sub-batches (e.g. 512 on CPU); kept when unset, 2048 for a packed export",
    ),
    calibration: Optional[Path] = Opt(
        None,
        "--calibration",
        help="int8: training docs (.spacy or IOB .tsv); onnx: smooth the Linear layers' inputs on them before quantisation (SmoothQuant; plain dynamic int8 when unset); openvino: calibrate the static int8 on them (required)",
        exists=True,
        dir_okay=False,
    ),
    n_calibration: Optional[int] = Opt(
        None,
        "--n-calibration",
        min=1,
        help="Docs of --calibration to use (its first ones); 512 for onnx, 1024 for openvino when unset",
    ),
    smooth_alpha: float = Opt(
        0.9,
        "--smooth-alpha",
        min=0.0,
        max=1.0,
        help="onnx: how much of the input range moves into the weights (0-1); openvino uses NNCF's own",
    ),
    packed: Optional[bool] = Opt(
        None,
        "--packed/--padded",
        help="Lay the spans of a sub-batch end to end in rows of 128 wordpieces, each attending only to itself (less padding, fewer input shapes; BERT models), or pad each to the longest; when unset, packed for openvino and padded for onnx",
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
    """Export the transformer of a trained pipeline to an inference runtime
    and save the pipeline, which `spacy.load` returns with the encoder in ONNX
    Runtime or OpenVINO and the same tokenizer, span getter, NER head and
    decoding. Needs `pip install 'spacy-fastbioner[onnx]'` or
    `'spacy-fastbioner[openvino]'`."""
    from ..loading import load_pipeline
    from ..runtime import N_CALIBRATION, RUNTIMES, export_pipeline
    from ..runtime.onnx_model import FFN_OUTPUT_LAYERS
    from ..util.disk_size import size_on_disk

    if runtime == "auto":
        _export_auto(model, output_path, calibration, dev, n_timing, per_channel, smooth_alpha, max_batch_items, int8)
        return
    if runtime not in RUNTIMES:
        msg.fail(f"Unknown --runtime {runtime!r}: expected auto or one of {', '.join(RUNTIMES)}", exits=1)
    needed = {"onnx": ("onnx", "onnxruntime"), "openvino": ("onnx", "openvino") + (("nncf",) if int8 else ())}
    missing = [name for name in needed[runtime] if importlib.util.find_spec(name) is None]
    if missing:
        msg.fail(
            f"Exporting to {runtime} needs {', '.join(missing)}: pip install 'spacy-fastbioner[{runtime}]'", exits=1
        )
    if calibration is not None and not int8:
        msg.fail("--calibration is for the int8 export: leave it out with --fp32", exits=1)
    if runtime == "openvino" and int8 and calibration is None:
        msg.fail(
            "OpenVINO's int8 is static: give training docs to calibrate it on (--calibration TRAIN), or use --fp32",
            exits=1,
        )
    try:
        nlp = load_pipeline(model)
        calibration_docs = None
        if calibration is not None:
            from ..benchmark.data import load_gold_docs

            calibration_docs = load_gold_docs(calibration, nlp.vocab)[: n_calibration or N_CALIBRATION[runtime]]
        exported = export_pipeline(
            nlp,
            runtime=runtime,
            int8=int8,
            per_channel=per_channel,
            max_batch_items=max_batch_items,
            calibration=calibration_docs,
            smooth_alpha=smooth_alpha,
            packed=packed,
            int8_scheme=int8_scheme,
            reduce_range=reduce_range,
            fp32_layers=FFN_OUTPUT_LAYERS if ffn_fp32 else (),
        )
    except (OSError, ValueError) as err:
        msg.fail(f"Cannot export the pipeline {model!r}", str(err), exits=1)
    output_path.mkdir(parents=True, exist_ok=True)
    exported.to_disk(output_path)
    before, after = size_on_disk(model), size_on_disk(output_path)
    sizes = f" ({before / 2**20:.1f} MB -> {after / 2**20:.1f} MB on disk)" if before and after else ""
    static = exported.meta["fastbioner"]["quantized"] == "qint8-static"
    calibrated = "calibrated" if static else "smoothed"
    kind = f"int8, {calibrated} on {len(calibration_docs)} docs" if calibration_docs else ("int8" if int8 else "fp32")
    kind += ", packed" if exported.meta["fastbioner"]["packed"] else ""
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


def _export_auto(
    model: str,
    output_path: Path,
    calibration: Optional[Path],
    dev: Optional[Path],
    n_timing: int,
    per_channel: bool,
    smooth_alpha: float,
    max_batch_items: Optional[int],
    int8: bool,
) -> None:
    """`export --runtime auto`: export, time and score the candidate forms
    for this CPU, and save the one chosen (runtime/auto.py)."""
    from ..benchmark.data import load_gold_docs
    from ..loading import load_pipeline
    from ..runtime.auto import export_auto
    from ..runtime.cpu import cpu_class, read_cpu_flags

    if not int8:
        msg.fail(
            "--runtime auto chooses among int8 and fp32 forms itself: leave --fp32 out, or name a runtime", exits=1
        )
    if calibration is None:
        msg.fail(
            "--runtime auto needs training docs (--calibration TRAIN) to calibrate int8 and time the candidates on",
            exits=1,
        )
    flags = read_cpu_flags()
    msg.info(f"CPU class: {cpu_class(flags)}; timing each candidate on {n_timing} docs of {calibration}")
    try:
        nlp = load_pipeline(model)
        train = load_gold_docs(calibration, nlp.vocab)
        dev_docs = load_gold_docs(dev, nlp.vocab) if dev is not None else None
        exported, choice = export_auto(
            nlp,
            calibration=train,
            dev=dev_docs,
            flags=flags,
            n_timing=n_timing,
            per_channel=per_channel,
            smooth_alpha=smooth_alpha,
            max_batch_items=max_batch_items,
            log=msg.text,
        )
    except (OSError, ValueError) as err:
        msg.fail(f"Cannot export the pipeline {model!r}", str(err), exits=1)
    output_path.mkdir(parents=True, exist_ok=True)
    exported.to_disk(output_path)
    msg.good(f"Saved the {choice['form']} pipeline to {output_path}: {choice['reason']}")
