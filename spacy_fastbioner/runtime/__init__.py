"""Inference runtimes for a pipeline's transformer: ONNX Runtime (fp32, or
dynamic int8) and OpenVINO (fp32, or NNCF's static int8), registered as
`spacy_fastbioner.OnnxTransformerModel.v1` and
`spacy_fastbioner.OpenVinoTransformerModel.v1`. A runtime is imported only
when a transformer of its kind is built or loaded."""

from .architecture import (
    ARCHITECTURES,
    ONNX_ARCHITECTURE,
    OPENVINO_ARCHITECTURE,
    RUNTIME_TITLES,
    RUNTIMES,
    RuntimeShim,
    build_onnx_transformer_model,
    build_openvino_transformer_model,
    is_runtime_transformer,
)
from .export import N_CALIBRATION, PACKED_BY_DEFAULT, PACKED_MAX_BATCH_ITEMS, export_pipeline, runtime_requirements
from .onnx_model import OnnxTransformer, export_onnx, quantize_onnx
from .openvino_model import OpenVinoTransformer

__all__ = [
    "ARCHITECTURES",
    "N_CALIBRATION",
    "PACKED_BY_DEFAULT",
    "PACKED_MAX_BATCH_ITEMS",
    "ONNX_ARCHITECTURE",
    "OPENVINO_ARCHITECTURE",
    "RUNTIMES",
    "RUNTIME_TITLES",
    "OnnxTransformer",
    "OpenVinoTransformer",
    "RuntimeShim",
    "build_onnx_transformer_model",
    "build_openvino_transformer_model",
    "export_onnx",
    "export_pipeline",
    "is_runtime_transformer",
    "quantize_onnx",
    "runtime_requirements",
]
