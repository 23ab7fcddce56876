"""A Hugging Face encoder exported to ONNX and run by ONNX Runtime.

`OnnxTransformer` is a `RuntimeTransformer` (base.py: the Hugging Face calling
convention, one session per torch thread count and process, rebuilt after a
change or a fork). Its `last_hidden_state` shares the runtime's output
buffer. Its state is the ONNX model's bytes (a protobuf, no pickle) and the
config. Spinning threads are off: on shared cores a spinning pool is
catastrophic.
"""

import re
import warnings
from io import BytesIO
from typing import Any, Dict, Optional, Sequence, cast

import numpy
import torch
from transformers import PretrainedConfig

from .base import RuntimeTransformer, as_int64
from .packing import PackedEncoder, pack_batch, packed_input_names

FORMAT = "spacy_fastbioner.onnx.v1"
# ONNX opset of the export: 17 has LayerNormalization, which ORT fuses.
OPSET = 17
OUTPUT_NAME = "last_hidden_state"
DYNAMIC_AXES = {0: "batch", 1: "sequence"}
# Only Linear layers (MatMul with a constant weight), as PyTorch's dynamic
# quantisation: the embedding tables and attention products stay fp32.
INT8_OP_TYPES = ["MatMul"]


def import_onnxruntime() -> Any:
    """RETURNS (module): onnxruntime, or an ImportError that says which extra to install."""
    try:
        import onnxruntime
    except ImportError as err:
        raise ImportError(
            "this pipeline's transformer runs in ONNX Runtime, which is not installed: "
            "pip install 'spacy-fastbioner[onnx]' (or: pip install onnxruntime)"
        ) from err
    return onnxruntime


class OnnxTransformer(RuntimeTransformer):
    """An encoder in ONNX Runtime, with the calling convention of a Hugging
    Face model (inference only).

    model_bytes (bytes): The serialised ONNX model.
    config (PretrainedConfig): The Hugging Face config of the exported model.
    """

    runtime = "onnx"
    label = "ONNX"

    def __init__(self, model_bytes: bytes, config: PretrainedConfig) -> None:
        super().__init__(config)
        self.model_bytes = model_bytes
        # Parse now, so that bad bytes fail at load time with a clear error.
        _ = self.session

    @property
    def session(self) -> Any:
        """The ONNX Runtime `InferenceSession`, (re)built for torch's current
        number of threads and for this process."""
        return self.runner()

    def _build_runner(self, *, threads: int) -> Any:
        session = make_session(self.model_bytes, threads=threads)
        self.input_names = [i.name for i in session.get_inputs()]
        return session

    def _run(self, runner: Any, feed: Dict[str, numpy.ndarray]) -> numpy.ndarray:
        return runner.run([OUTPUT_NAME], feed)[0]

    @property
    def is_int8(self) -> bool:
        """Whether the model is quantised (dynamic or static QuantizeLinear nodes)."""
        return b"QuantizeLinear" in self.model_bytes

    def num_parameters(self) -> int:
        """The number of weights (the ONNX initializers of float or int8 type,
        quantisation scales and zero points left out). Needs the onnx package
        (the [onnx] extra); running the model needs only onnxruntime."""
        import onnx

        graph = onnx.load_from_string(self.model_bytes).graph
        weights = (onnx.TensorProto.FLOAT, onnx.TensorProto.INT8, onnx.TensorProto.UINT8)
        n = 0
        for init in graph.initializer:
            if init.data_type in weights and len(init.dims) >= 1 and not _is_quant_param(init.name):
                n += int(numpy.prod(init.dims))
        return n

    def payload(self) -> Dict[str, bytes]:
        """The bytes the transformer's shim stores."""
        return {"onnx": self.model_bytes}

    @classmethod
    def from_payload(cls, payload: Dict[str, bytes], config: PretrainedConfig) -> "OnnxTransformer":
        return cls(payload["onnx"], config)

    def __deepcopy__(self, memo: Dict[int, Any]) -> "OnnxTransformer":
        return OnnxTransformer(self.model_bytes, self.config)

    def __getstate__(self) -> Dict[str, Any]:
        # For spaCy's multiprocessing with spawn: the session is rebuilt.
        return {"model_bytes": self.model_bytes, "config": self.config.to_dict()}

    def __setstate__(self, state: Dict[str, Any]) -> None:
        from transformers import AutoConfig

        config = AutoConfig.for_model(**state["config"])
        self.__init__(state["model_bytes"], config)  # type: ignore[misc]


def _is_quant_param(name: str) -> bool:
    return name.endswith(("_scale", "_zero_point"))


def make_session(model_bytes: bytes, *, threads: int = 1) -> Any:
    """An ONNX Runtime CPU session with all graph optimisations.

    model_bytes (bytes): The ONNX model.
    threads (int): Intra-op threads.
    RETURNS (onnxruntime.InferenceSession): The session.
    """
    ort = import_onnxruntime()
    options = ort.SessionOptions()
    options.intra_op_num_threads = max(1, threads)
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.log_severity_level = 3
    try:
        return ort.InferenceSession(model_bytes, options, providers=["CPUExecutionProvider"])
    except Exception as err:  # onnxruntime raises its own exception types
        raise ValueError(f"the transformer's saved bytes are not a valid ONNX model: {err}") from None


class _LastHiddenState(torch.nn.Module):
    """The encoder with positional inputs and one output, for the export."""

    def __init__(self, model: torch.nn.Module, input_names: Sequence[str]) -> None:
        super().__init__()
        self.model = model
        self.input_names = list(input_names)

    def forward(self, *args: torch.Tensor) -> torch.Tensor:
        return self.model(**dict(zip(self.input_names, args))).last_hidden_state


def export_onnx(model: torch.nn.Module, example_inputs: Dict[str, torch.Tensor], *, packed: bool = False) -> bytes:
    """Export a Hugging Face encoder (fp32) to ONNX with dynamic batch and
    sequence axes, through torch's TorchScript exporter.

    model (torch.nn.Module): The encoder, e.g. a `BertModel`.
    example_inputs (Dict[str, torch.Tensor]): Its keyword inputs for one batch
        (input_ids, attention_mask and, where the model takes them, token_type_ids).
    packed (bool): Export the graph that takes packed batches (packing.py):
        input_ids, segment_ids, position_ids (and token_type_ids).
    RETURNS (bytes): The ONNX model.
    """
    model.eval()
    module: torch.nn.Module
    if packed:
        names = packed_input_names(example_inputs)
        batch = pack_batch(example_inputs)
        args = tuple(torch.from_numpy(batch.inputs[name]) for name in names)
        module = PackedEncoder(model, names)
    else:
        names = list(example_inputs)
        args = tuple(example_inputs[name].to(torch.int64) for name in names)
        module = _LastHiddenState(model, names)
    buffer = BytesIO()
    with warnings.catch_warnings(), torch.no_grad():
        # The TorchScript exporter and its tracer warn about deprecation and
        # about Python control flow that is fixed for an encoder.
        warnings.simplefilter("ignore")
        torch.onnx.export(
            module,
            args,
            cast(Any, buffer),  # a file object works as well as a path
            dynamo=False,
            input_names=names,
            output_names=[OUTPUT_NAME],
            dynamic_axes={name: DYNAMIC_AXES for name in names + [OUTPUT_NAME]},
            opset_version=OPSET,
            do_constant_folding=True,
        )
    return buffer.getvalue()


# The feed-forward output layers of a BERT encoder (their input is the GELU's
# output, with the widest outliers of the encoder), as the export names them:
# "/encoder/layer.3/output/dense/MatMul", or ".../output/dense/linear/MatMul"
# when smoothed; not the attention's ".../attention/output/dense/...". Static
# int8 with min/max ranges lost 1.73 dev F on a BC5CDR-chem teacher, and 0.14
# with these layers in fp32 (results/int8-static-study.json).
FFN_OUTPUT_LAYERS = (r"layer\.\d+/output/dense/",)


def quantize_onnx(model_bytes: bytes, *, per_channel: bool = True, reduce_range: bool = False) -> bytes:
    """Dynamic int8 quantisation of an ONNX model's MatMuls with constant
    weights (the Linear layers): int8 weights, activations quantised per
    batch, as PyTorch's dynamic quantisation. Needs the `onnx` package.

    model_bytes (bytes): The fp32 ONNX model.
    per_channel (bool): One scale per output channel instead of one per matrix.
    reduce_range (bool): 7-bit weights (see `quantize_onnx_static`).
    RETURNS (bytes): The int8 ONNX model.
    """
    import logging
    import tempfile
    from pathlib import Path

    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    model = onnx.load_from_string(model_bytes)
    with tempfile.TemporaryDirectory() as tmp:
        output = Path(tmp) / "model-int8.onnx"
        # quantize_dynamic logs a pre-processing hint at WARNING for every model.
        logger = logging.getLogger()
        level = logger.level
        logger.setLevel(logging.ERROR)
        try:
            quantize_dynamic(
                model,
                output,
                op_types_to_quantize=INT8_OP_TYPES,
                per_channel=per_channel,
                reduce_range=reduce_range,
                weight_type=QuantType.QInt8,
                extra_options={"MatMulConstBOnly": True},
            )
        finally:
            logger.setLevel(level)
        return output.read_bytes()


def quantize_onnx_static(
    model_bytes: bytes,
    calibration: Sequence[Dict[str, numpy.ndarray]],
    *,
    per_channel: bool = True,
    qdq: bool = False,
    linear_only: bool = False,
    reduce_range: bool = False,
    exclude: Sequence[str] = (),
) -> bytes:
    """Static int8 quantisation of an ONNX model's MatMuls, activation ranges
    calibrated (min/max) on example batches (uint8 activations, int8
    weights). The scales are fixed at export, so a row's output does not
    depend on the other rows of its batch (unlike `quantize_onnx`).
    `export --int8-scheme static` uses the QDQ format on the Linear layers
    only; the QOperator form over every MatMul is the int8 study's
    (`project/scripts/int8_study.py`), where it lost far more F on
    NCBI-disease than dynamic int8.

    model_bytes (bytes): The fp32 ONNX model.
    calibration (Sequence[Dict[str, numpy.ndarray]]): The model's inputs for
        some batches of training sentences.
    per_channel (bool): One weight scale per output channel.
    qdq (bool): QuantizeLinear/DequantizeLinear pairs around fp32 ops, which
        ONNX Runtime fuses into int8 kernels, rather than QOperator ops.
    linear_only (bool): Quantise only the MatMuls with a constant weight (the
        Linear layers), keeping the attention products in fp32.
    reduce_range (bool): 7-bit weights. Without VNNI, ONNX Runtime's uint8 x
        int8 kernels (AVX2's VPMADDUBSW) add pairs of products in 16 bits,
        which saturate when both factors are large; 7-bit weights cannot
        (255 * 64 * 2 < 32,767). It lost less F than 8-bit weights on an
        AVX-512 VNNI CPU as well (results/int8-static-study.json).
    exclude (Sequence[str]): Regular expressions of node names (as the
        export names them, e.g. "/encoder/layer.5/output/dense/MatMul") that
        stay fp32.
    RETURNS (bytes): The int8 ONNX model.
    """
    import logging
    import tempfile
    from pathlib import Path

    import onnx
    from onnxruntime.quantization import (
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )

    graph = onnx.load_from_string(model_bytes).graph
    # Calibration batches may carry inputs the graph does not take.
    names = {i.name for i in graph.input}
    excluded = [node.name for node in graph.node if any(re.search(p, node.name) for p in exclude)]
    if exclude and not excluded:
        raise ValueError(f"no node of the graph matches {list(exclude)}")

    class _Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.batches = iter([{k: as_int64(v) for k, v in b.items() if k in names} for b in calibration])

        def get_next(self) -> Optional[Dict[str, numpy.ndarray]]:
            return next(self.batches, None)

    with tempfile.TemporaryDirectory() as tmp:
        source, output = Path(tmp) / "model.onnx", Path(tmp) / "model-int8.onnx"
        source.write_bytes(model_bytes)
        logger = logging.getLogger()
        level = logger.level
        logger.setLevel(logging.ERROR)
        try:
            quantize_static(
                source,
                output,
                _Reader(),
                quant_format=QuantFormat.QDQ if qdq else QuantFormat.QOperator,
                op_types_to_quantize=INT8_OP_TYPES,
                per_channel=per_channel,
                reduce_range=reduce_range,
                activation_type=QuantType.QUInt8,
                weight_type=QuantType.QInt8,
                calibrate_method=CalibrationMethod.MinMax,
                nodes_to_exclude=excluded,
                extra_options={"MatMulConstBOnly": linear_only},
            )
        finally:
            logger.setLevel(level)
        return output.read_bytes()
