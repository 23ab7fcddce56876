"""A Hugging Face encoder converted to OpenVINO and run by its CPU plugin.

`OpenVinoTransformer` is a `RuntimeTransformer` (base.py), as
`OnnxTransformer` is: the model's `config`, the Hugging Face calling
convention, a `BaseModelOutput` with a torch `last_hidden_state`. Its state is
an OpenVINO IR (the XML graph and the binary weights, no pickle) and the config.

The int8 form is static: NNCF quantises the graph (its transformer preset:
SmoothQuant, then activation ranges calibrated on training sentences), and
OpenVINO runs the attention products as well as the Linear layers in int8.
On this project's students it is the fastest CPU path found at unchanged F
(README: Fast inference).

Threads and fork follow base.py: one compiled model (and its infer request)
per torch thread count and process, rebuilt after a change or a fork; a
forked child keeps the compiled model it inherited alive rather than destroy
it. Precision is fixed
to f32 where the graph is not int8: on CPUs with bf16 OpenVINO would
otherwise run in bf16 by default, and the fp32 export would no longer give
PyTorch's logits.
"""

import tempfile
from pathlib import Path
from typing import Any, Dict, Optional, Sequence, Tuple

import numpy
from transformers import PretrainedConfig

from .base import RuntimeTransformer, as_int64
from .packing import max_row_width

FORMAT = "spacy_fastbioner.openvino.v1"


def import_openvino() -> Any:
    """RETURNS (module): openvino, or an ImportError that says which extra to install."""
    try:
        import openvino
    except ImportError as err:
        raise ImportError(
            "this pipeline's transformer runs in OpenVINO, which is not installed: "
            "pip install 'spacy-fastbioner[openvino]' (or: pip install openvino)"
        ) from err
    return openvino


class OpenVinoTransformer(RuntimeTransformer):
    """An encoder in OpenVINO, with the calling convention of a Hugging Face
    model (inference only).

    xml (bytes): The OpenVINO IR graph.
    weights (bytes): The IR's weights (the .bin file).
    config (PretrainedConfig): The Hugging Face config of the converted model.
    properties (Optional[Dict[str, Any]]): CPU plugin properties over
        `compile_model`'s (e.g. `cache_capacity_properties`).
    """

    runtime = "openvino"
    label = "OpenVINO"

    def __init__(
        self, xml: bytes, weights: bytes, config: PretrainedConfig, properties: Optional[Dict[str, Any]] = None
    ) -> None:
        super().__init__(config)
        self.xml = xml
        self.weights = weights
        self.properties: Dict[str, Any] = dict(properties or {})
        # Read now, so that bad bytes fail at load time with a clear error.
        self._model = bound_sequence_length(read_ir(xml, weights), max_row_width(config))
        self.input_names = [port.get_any_name() for port in self._model.inputs]

    @property
    def request(self) -> Any:
        """An infer request of the compiled model, (re)built for torch's
        current number of threads and for this process."""
        return self.runner()[1]

    @property
    def compiled(self) -> Any:
        """The compiled model of `request` (built by it)."""
        return self.runner()[0]

    def _build_runner(self, *, threads: int) -> Tuple[Any, Any]:
        compiled = compile_model(self._model, threads=threads, properties=self.properties)
        return compiled, compiled.create_infer_request()

    def _run(self, runner: Tuple[Any, Any], feed: Dict[str, numpy.ndarray]) -> numpy.ndarray:
        # share_outputs=False copies the output out of the request's buffer,
        # which the next call reuses while docs still hold this one.
        request = runner[1]
        return request.infer({k: as_int64(v) for k, v in feed.items()}, share_inputs=True, share_outputs=False)[0]

    @property
    def is_int8(self) -> bool:
        """Whether the graph is quantised (NNCF's FakeQuantize operations)."""
        return b'type="FakeQuantize"' in self.xml

    def num_parameters(self) -> int:
        """The number of weights: the elements of the graph's floating-point
        and int8 constants that hold more than one value, quantisation
        parameters left out (FakeQuantize's ranges, and the per-channel
        dequantisation scales and smoothing factors: float constants of rank
        2 or more that feed a Multiply)."""
        weight_types = {"f32", "f16", "bf16", "i8", "u8"}
        n = 0
        for op in self._model.get_ordered_ops():
            element_type = op.get_output_element_type(0).get_type_name() if op.get_type_name() == "Constant" else None
            if element_type not in weight_types:
                continue
            shape = list(op.get_output_shape(0))
            consumers = {t.get_node().get_type_name() for t in op.output(0).get_target_inputs()}
            if "FakeQuantize" in consumers or (element_type[0] in "fb" and len(shape) >= 2 and "Multiply" in consumers):
                continue
            size = int(numpy.prod(shape))
            n += size if size > 1 else 0
        return n

    def payload(self) -> Dict[str, bytes]:
        """The bytes the transformer's shim stores."""
        return {"xml": self.xml, "bin": self.weights}

    @classmethod
    def from_payload(cls, payload: Dict[str, bytes], config: PretrainedConfig) -> "OpenVinoTransformer":
        return cls(payload["xml"], payload["bin"], config)

    def set_properties(self, properties: Dict[str, Any]) -> None:
        """Compile with these CPU plugin properties from the next call on."""
        if dict(properties) != self.properties:
            self.properties = dict(properties)
            self._rebuild_runner()

    def __deepcopy__(self, memo: Dict[int, Any]) -> "OpenVinoTransformer":
        return OpenVinoTransformer(self.xml, self.weights, self.config, self.properties)

    def __getstate__(self) -> Dict[str, Any]:
        # For spaCy's multiprocessing with spawn: the model is compiled again.
        return {
            "xml": self.xml,
            "weights": self.weights,
            "config": self.config.to_dict(),
            "properties": self.properties,
        }

    def __setstate__(self, state: Dict[str, Any]) -> None:
        from transformers import AutoConfig

        config = AutoConfig.for_model(**state["config"])
        self.__init__(state["xml"], state["weights"], config, state.get("properties"))  # type: ignore[misc]


def cache_capacity_properties(cache_capacity: Optional[int]) -> Dict[str, Any]:
    """The CPU plugin properties that bound its cache of compiled kernels.

    The CPU plugin keeps the kernels it compiled for each input shape, up to
    5,000 entries by default; over a long run of ever new shapes the process
    grows by gigabytes (README: Fast inference). A smaller capacity keeps the
    process smaller, at the cost of compiling again shapes that come back.

    cache_capacity (Optional[int]): Entries to keep; OpenVINO's default when None.
    RETURNS (Dict[str, Any]): The properties (empty for the default).
    """
    if cache_capacity is None:
        return {}
    if cache_capacity < 0:
        raise ValueError(f"cache_capacity must be 0 or more, got {cache_capacity}")
    return {"CPU_RUNTIME_CACHE_CAPACITY": int(cache_capacity)}


def read_ir(xml: bytes, weights: bytes) -> Any:
    """RETURNS (openvino.Model): The model of an IR's XML and weights."""
    ov = import_openvino()
    try:
        return ov.Core().read_model(model=xml, weights=weights)
    except Exception as err:  # OpenVINO raises RuntimeError with its own text
        raise ValueError(f"the transformer's saved bytes are not a valid OpenVINO IR model: {err}") from None


def bound_sequence_length(model: Any, max_length: Optional[int]) -> Any:
    """The model with its sequence axis bounded to [1, max_length] (the batch
    axis stays unbounded). Every batch of varied shapes is a new shape to the
    CPU plugin; with a bound it plans memory for the largest once, and unseen
    shapes cost less (a trial on NCBI-disease's test batches). Longer inputs
    than the position embeddings cannot run anyway."""
    if not max_length:
        return model
    ov = import_openvino()
    shapes = {}
    for port in model.inputs:
        shape = port.get_partial_shape()
        if shape.rank.is_static and shape.rank.get_length() == 2:
            shapes[port.get_any_name()] = ov.PartialShape([shape[0], ov.Dimension(1, int(max_length))])
    if shapes:
        model.reshape(shapes)
    return model


def compile_properties(threads: int = 1, properties: Optional[Dict[str, Any]] = None) -> Dict[str, Any]:
    """The CPU plugin properties that `compile_model` compiles with:
    `threads` inference threads, one stream, latency mode, f32 where not
    int8, no core pinning (the cores are shared with the rest of the process
    and machine). Snippets (subgraphs that the plugin generates code for per
    input shape) stay on: off, the int8 student's encoder was a little
    faster on shapes it had seen (`project/scripts/openvino_shapes.py`), but
    no faster over thousands of abstracts, and its process grew more (README).

    threads (int): Inference threads.
    properties (Optional[Dict[str, Any]]): Properties that replace these
        (`cache_capacity_properties`, or a study's).
    RETURNS (Dict[str, Any]): The properties.
    """
    config: Dict[str, Any] = {
        "INFERENCE_NUM_THREADS": max(1, threads),
        "NUM_STREAMS": 1,
        "PERFORMANCE_HINT": "LATENCY",
        "INFERENCE_PRECISION_HINT": "f32",
        "ENABLE_CPU_PINNING": False,
    }
    config.update(properties or {})
    return config


def compile_model(model: Any, *, threads: int = 1, properties: Optional[Dict[str, Any]] = None) -> Any:
    """The model compiled for the CPU with `compile_properties(threads, properties)`."""
    ov = import_openvino()
    return ov.Core().compile_model(model, "CPU", compile_properties(threads, properties))


def onnx_to_ir(onnx_bytes: bytes) -> Any:
    """RETURNS (openvino.Model): An ONNX model read by OpenVINO's ONNX frontend."""
    ov = import_openvino()
    return ov.Core().read_model(model=onnx_bytes)


def quantize_ir(model: Any, calibration: Sequence[Dict[str, Any]]) -> Any:
    """Static int8 quantisation with NNCF's transformer preset (SmoothQuant,
    min/max activation ranges on the calibration batches, fast bias
    correction). Needs the `nncf` package.

    model (openvino.Model): The fp32 model.
    calibration (Sequence[Dict[str, Any]]): The encoder's inputs for some
        batches of training sentences.
    RETURNS (openvino.Model): The int8 model.
    """
    try:
        import nncf
    except ImportError as err:
        raise ImportError(
            "OpenVINO's int8 export needs NNCF: pip install 'spacy-fastbioner[openvino]' (or: pip install nncf)"
        ) from err
    if not calibration:
        raise ValueError("OpenVINO's int8 is static: it needs calibration batches (training sentences)")
    names = [port.get_any_name() for port in model.inputs]
    feeds = [{name: as_int64(batch[name]) for name in names} for batch in calibration]
    return nncf.quantize(
        model,
        nncf.Dataset(feeds),
        model_type=nncf.ModelType.TRANSFORMER,
        subset_size=len(feeds),
    )


def ir_bytes(model: Any) -> Tuple[bytes, bytes]:
    """RETURNS (Tuple[bytes, bytes]): The IR's XML and weights, fp32 weights kept fp32."""
    ov = import_openvino()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "model.xml"
        ov.save_model(model, str(path), compress_to_fp16=False)
        return path.read_bytes(), path.with_suffix(".bin").read_bytes()
