"""Export a trained pipeline's transformer to a faster inference runtime.

The exported pipeline is the same spaCy pipeline (tokenizer, sentences,
`transformer` component with its span getter and `max_batch_items`,
`fastbioner_ner` and its decoding) whose transformer model block names
`spacy_fastbioner.OnnxTransformerModel.v1` or
`spacy_fastbioner.OpenVinoTransformerModel.v1`: `spacy.load` returns it with
the encoder in ONNX Runtime or OpenVINO, and the runtime's model is stored
inside the pipeline.
"""

from typing import Any, Dict, Optional, Sequence, cast

from spacy.language import Language
from spacy.tokens import Doc
from spacy.util import load_model_from_config

from ..encoder.inputs import encoder_inputs
from ..encoder.transformer import find_transformer
from .architecture import ARCHITECTURES, INT8_SCHEMES, RUNTIMES, to_runtime_objects
from .packing import is_packable
from .requirements import RUN_REQUIREMENTS
from .smoothing import DEFAULT_ALPHA

SOURCE_ARCHITECTURE = "spacy-transformers.TransformerModel.v3"
# Training sentences for the int8 calibration, by runtime (the first ones of
# the calibration docs). OpenVINO's static ranges lost least F on the
# NCBI-disease dev set with 1,024 (README: Fast inference).
N_CALIBRATION = {"onnx": 512, "openvino": 1024}
# Whether a runtime's export packs its batches by default (BERT models only).
# OpenVINO compiles kernels per input shape and packing leaves few shapes: its
# int8 NCBI student ran 1.27x faster packed on the test sentences and 1.69x
# over thousands of abstracts; ONNX Runtime gained nothing (README: Fast inference).
PACKED_BY_DEFAULT = {"onnx": False, "openvino": True}
# A packed export's max_batch_items when none is given: packing computes no
# padding, so a sub-batch may be large, and fewer calls cost less on the spaCy
# side (512 stays the padded runtimes' best, where padding grows with size).
PACKED_MAX_BATCH_ITEMS = 2048


def runtime_requirements(runtime: str) -> Dict[str, str]:
    """The pip requirement of a runtime, by distribution name, for meta.json
    (requirements.py holds the pins).

    RETURNS (Dict[str, str]): e.g. {"onnxruntime": "onnxruntime>=1.17"}.
    """
    if runtime not in RUNTIMES:
        raise ValueError(f"unknown runtime {runtime!r}: expected one of {RUNTIMES}")
    return dict(RUN_REQUIREMENTS[runtime])


def export_pipeline(
    nlp: Language,
    *,
    runtime: str = "onnx",
    int8: bool = True,
    per_channel: bool = True,
    max_batch_items: Optional[int] = None,
    calibration: Optional[Sequence[Doc]] = None,
    smooth_alpha: float = DEFAULT_ALPHA,
    packed: Optional[bool] = None,
    int8_scheme: Optional[str] = None,
    reduce_range: bool = False,
    fp32_layers: Sequence[str] = (),
) -> Language:
    """A copy of a trained pipeline whose transformer runs in an inference
    runtime. The given pipeline is not changed.

    nlp (Language): A trained pipeline with a spacy-transformers transformer
        (`TransformerModel.v3`, fp32).
    runtime (str): "onnx" (ONNX Runtime) or "openvino" (OpenVINO).
    int8 (bool): Quantise to int8: ONNX Runtime's dynamic (or, with
        `int8_scheme="static"`, static) quantisation of the Linear layers,
        or NNCF's static quantisation for OpenVINO. Static int8 needs
        `calibration`.
    per_channel (bool): ONNX Runtime: one int8 scale per output channel.
    max_batch_items (Optional[int]): A new `max_batch_items` for the
        transformer component (see `quantize_pipeline`); when None, kept, or
        `PACKED_MAX_BATCH_ITEMS` for a packed export.
    calibration (Optional[Sequence[Doc]]): int8 only: training docs (their
        words) on which to measure the Linear layers' input ranges: ONNX
        Runtime smooths them before quantisation (`smoothing.py`; none when
        None); OpenVINO calibrates its static int8 on them (required).
    smooth_alpha (float): ONNX Runtime: the smoothing's migration strength, in [0, 1].
    packed (Optional[bool]): Export the encoder that takes packed batches
        (the spans laid end to end in rows, packing.py): less padding, fewer
        input shapes. When None: the runtime's default (`PACKED_BY_DEFAULT`)
        for BERT models, padded for others.
    int8_scheme (Optional[str]): "dynamic" or "static" (`INT8_SCHEMES`; the
        runtime's default when None). Dynamic int8 measures activation scales
        per call, so a document's entities can change with its batch; static
        scales are fixed at export (batch-invariant).
    reduce_range (bool): ONNX Runtime's int8 with 7-bit weights, which cannot
        saturate the 16-bit sums of CPUs without VNNI (`quantize_onnx_static`).
    fp32_layers (Sequence[str]): ONNX Runtime's static int8: patterns of node
        names left in fp32 (`onnx_model.FFN_OUTPUT_LAYERS`: the feed-forward
        output layers, whose inputs have the widest outliers).
    RETURNS (Language): The exported pipeline.
    """
    if runtime not in RUNTIMES:
        raise ValueError(f"unknown runtime {runtime!r}: expected one of {RUNTIMES}")
    trf = find_transformer(nlp)
    config = nlp.config.copy()
    model_cfg = config["components"][trf.name]["model"]
    architecture = model_cfg.get("@architectures")
    if architecture != SOURCE_ARCHITECTURE:
        raise ValueError(
            f"cannot export the {trf.name!r} component: its model is {architecture!r}, "
            f"expected the fp32 PyTorch model {SOURCE_ARCHITECTURE!r} (export the pipeline "
            "that `quantize` started from, not its int8 copy)"
        )
    if max_batch_items is not None and max_batch_items < 1:
        raise ValueError(f"max_batch_items must be positive, got {max_batch_items}")
    if calibration is not None and not int8:
        raise ValueError("calibration docs are for the int8 export: the fp32 export needs none")
    if calibration is not None and not calibration:
        raise ValueError("no calibration docs: give some training docs, or none for plain dynamic int8")
    scheme = int8_scheme or INT8_SCHEMES[runtime][0]
    if scheme not in INT8_SCHEMES[runtime]:
        raise ValueError(f"unknown int8 scheme {scheme!r} for {runtime}: expected one of {INT8_SCHEMES[runtime]}")
    if runtime == "openvino" and int8 and calibration is None:
        raise ValueError(
            "OpenVINO's int8 is static: give training docs to calibrate it on (--calibration TRAIN), or export --fp32"
        )
    if int8 and scheme == "static" and calibration is None:
        raise ValueError(f"{runtime}'s static int8 needs training docs to calibrate it on (--calibration TRAIN)")
    source = cast(Any, trf.model.layers[0].shims[0])._hfmodel
    if packed is None:
        packed = PACKED_BY_DEFAULT[runtime] and is_packable(source.transformer.config)
    if packed and max_batch_items is None:
        max_batch_items = PACKED_MAX_BATCH_ITEMS
    batches = None
    if calibration is not None:
        # NNCF's ranges include padded positions and it calibrates per batch:
        # static int8 calibrates on the sub-batches the exported pipeline will cut.
        batch_items = max_batch_items if scheme == "static" else None
        batches = _calibration_batches(nlp, calibration, batch_items)
    model_cfg["@architectures"] = ARCHITECTURES[runtime]
    model_cfg["int8"] = int8
    if runtime == "onnx":
        model_cfg["per_channel"] = per_channel
    model_cfg["packed"] = packed
    if max_batch_items is not None:
        config["components"][trf.name]["max_batch_items"] = max_batch_items
    # Keep a [distillation] block out: its references need not resolve at load.
    config.pop("distillation", None)
    exported = load_model_from_config(config, auto_fill=False, validate=False)
    exported.from_bytes(nlp.to_bytes(exclude=[trf.name]), exclude=[trf.name])
    new_trf = find_transformer(exported)
    new_trf.cfg.update(trf.cfg)
    if max_batch_items is not None:
        new_trf.cfg["max_batch_items"] = max_batch_items
    hf_objects = to_runtime_objects(
        source,
        runtime=runtime,
        int8=int8,
        per_channel=per_channel,
        calibration=batches,
        smooth_alpha=smooth_alpha,
        packed=packed,
        int8_scheme=scheme,
        reduce_range=reduce_range,
        fp32_layers=fp32_layers,
    )
    new_trf.model.attrs["set_transformer"](new_trf.model, hf_objects)
    meta: Dict[str, Any] = dict(nlp.meta)
    suffix = f"{runtime}_int8" if int8 else runtime
    meta["name"] = f"{nlp.meta.get('name', 'pipeline')}_{suffix}"
    meta["fastbioner"] = {
        **dict(nlp.meta.get("fastbioner") or {}),
        "runtime": runtime,
        "quantized": None if not int8 else ("qint8-static" if scheme == "static" else "qint8"),
        "batch_invariant": not int8 or scheme == "static",
        "smoothing": _smoothing_meta(runtime, calibration, smooth_alpha),
        "packed": packed,
    }
    if reduce_range:
        meta["fastbioner"]["weight_bits"] = 7
    if fp32_layers:
        meta["fastbioner"]["fp32_layers"] = list(fp32_layers)
    requirements = list(meta.get("requirements") or [])
    for dist, requirement in runtime_requirements(runtime).items():
        if not any(r.split(">")[0].split("=")[0].split("<")[0].strip() == dist for r in requirements):
            requirements.append(requirement)
    meta["requirements"] = requirements
    exported.meta.update(meta)
    return exported


def _smoothing_meta(runtime: str, calibration: Optional[Sequence[Doc]], alpha: float) -> Optional[Dict[str, Any]]:
    """What meta.json records of the int8 calibration."""
    if calibration is None:
        return None
    if runtime == "openvino":
        return {"method": "nncf-transformer-preset", "calibration_docs": len(calibration)}
    return {"alpha": alpha, "calibration_docs": len(calibration)}


def _calibration_batches(nlp: Language, docs: Sequence[Doc], max_batch_items: Optional[int]) -> Any:
    """The encoder's inputs for the calibration docs, in sub-batches of
    `max_batch_items` padded wordpieces (the pipeline's own when None)."""
    trf = find_transformer(nlp)
    kept = trf.cfg["max_batch_items"]
    if max_batch_items is not None:
        trf.cfg["max_batch_items"] = max_batch_items
    try:
        return encoder_inputs(nlp, docs)
    finally:
        trf.cfg["max_batch_items"] = kept
