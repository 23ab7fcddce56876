"""Inference runtimes for a pipeline's transformer: ONNX Runtime, fp32 or
int8, registered as `spacy_fastbioner.OnnxTransformerModel.v1`. onnxruntime
is imported only when an ONNX transformer is built or loaded."""

from .architecture import ONNX_ARCHITECTURE, OnnxShim, build_onnx_transformer_model
from .export import export_pipeline, runtime_requirements
from .onnx_model import RUNTIMES, OnnxTransformer, export_onnx, quantize_onnx

__all__ = [
    "ONNX_ARCHITECTURE",
    "RUNTIMES",
    "OnnxShim",
    "OnnxTransformer",
    "build_onnx_transformer_model",
    "export_onnx",
    "export_pipeline",
    "quantize_onnx",
    "runtime_requirements",
]
