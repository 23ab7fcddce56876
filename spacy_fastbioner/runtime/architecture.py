"""`spacy_fastbioner.OnnxTransformerModel.v1` and
`spacy_fastbioner.OpenVinoTransformerModel.v1`: the transformer model of
spacy-transformers' `transformer` component, with the encoder run by ONNX
Runtime or OpenVINO instead of PyTorch.

Each is `spacy-transformers.TransformerModel.v3` (the same span getter,
tokenizer, alignment and truncation, so `doc._.trf_data` and every listener
downstream are unchanged) whose PyTorch wrapper layer is replaced by an
inference-only layer over an `OnnxTransformer` or `OpenVinoTransformer`. Its
`to_bytes` / `to_disk` store a msgpack of the Hugging Face config, the
runtime's model bytes (ONNX protobuf, or OpenVINO IR XML and weights) and the
tokenizer's files, as `HFShim` stores the config, the weights and the
tokenizer; loading reads JSON, msgpack, protobuf or IR and tokenizer files,
never a pickle. `initialize()` (from `name`, like TransformerModel.v3) loads
the Hugging Face model and exports it, so these blocks also work in a config
that is trained from nothing but a model name. The forward pass is
`fast_forward.inference_forward`: the same output with less Python per token.
"""

import copy
from functools import partial
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple, Type, cast

import srsly
import torch
from spacy.tokens import Doc
from spacy.util import SimpleFrozenDict, registry
from spacy_transformers.data_classes import FullTransformerBatch, HFObjects, WordpieceBatch
from spacy_transformers.layers.transformer_model import huggingface_tokenize
from spacy_transformers.util import make_tempdir
from thinc.api import Model
from thinc.shims import Shim
from transformers import AutoConfig, AutoTokenizer
from transformers.modeling_outputs import BaseModelOutput

from . import onnx_model, openvino_model
from .base import RuntimeTransformer, v3_transformer_model
from .choice import warn_if_slow
from .cpu import read_cpu_flags
from .fast_forward import inference_forward
from .onnx_model import OnnxTransformer, export_onnx, quantize_onnx, quantize_onnx_static
from .openvino_model import OpenVinoTransformer, cache_capacity_properties, ir_bytes, onnx_to_ir, quantize_ir
from .packing import check_packable, max_row_width, pack_batch
from .smoothing import DEFAULT_ALPHA, smooth_linear_inputs

ONNX_ARCHITECTURE = "spacy_fastbioner.OnnxTransformerModel.v1"
OPENVINO_ARCHITECTURE = "spacy_fastbioner.OpenVinoTransformerModel.v1"
# The inference runtimes, by name: the transformer class, the shim's data
# format, the architecture and the runtime's name in messages.
RUNTIME_CLASSES: Dict[str, Type[Any]] = {"onnx": OnnxTransformer, "openvino": OpenVinoTransformer}
FORMATS = {"onnx": onnx_model.FORMAT, "openvino": openvino_model.FORMAT}
ARCHITECTURES = {"onnx": ONNX_ARCHITECTURE, "openvino": OPENVINO_ARCHITECTURE}
RUNTIME_TITLES = {"onnx": "ONNX Runtime", "openvino": "OpenVINO"}
RUNTIMES = tuple(RUNTIME_CLASSES)
# The int8 schemes of each runtime, its default first. Dynamic int8 measures
# activation scales per call: not batch-invariant (choice.py).
INT8_SCHEMES = {"onnx": ("dynamic", "static"), "openvino": ("static",)}


def is_runtime_transformer(model: Any) -> bool:
    """Whether a transformer runs in an inference runtime (not PyTorch)."""
    return isinstance(model, RuntimeTransformer)


class RuntimeShim(Shim):
    """Holds the runtime's transformer and the Hugging Face tokenizer where
    spacy-transformers' `HFShim` holds the PyTorch model and the tokenizer
    (`shim._hfmodel`), and serialises them without pickle."""

    def __init__(self, hf_model: HFObjects, runtime: str = "onnx", properties: Optional[Dict[str, Any]] = None) -> None:
        if runtime not in RUNTIMES:
            raise ValueError(f"unknown runtime {runtime!r}: expected one of {RUNTIMES}")
        if properties and runtime != "openvino":
            raise ValueError(f"runtime properties are for OpenVINO only, got {sorted(properties)} for {runtime}")
        super().__init__(hf_model.transformer)
        self.runtime = runtime
        # OpenVINO's CPU plugin properties, from the architecture's settings:
        # given to every transformer this shim holds, never serialised.
        self.properties: Dict[str, Any] = dict(properties or {})
        # What `export --runtime auto` chose and measured (choice.py): stored
        # with the model, so that `spacy.load` of a package can check it
        # against the CPU it runs on, which sees no meta.json.
        self.runtime_choice: Optional[Dict[str, Any]] = None
        self.set_transformer(hf_model)

    def set_transformer(self, hf_model: HFObjects) -> None:
        """Hold these Hugging Face objects, their runtime transformer given the shim's properties."""
        if isinstance(hf_model.transformer, OpenVinoTransformer):
            hf_model.transformer.set_properties(self.properties)
        self._hfmodel = hf_model
        self._model = hf_model.transformer

    @property
    def title(self) -> str:
        return RUNTIME_TITLES[self.runtime]

    def __call__(self, inputs: WordpieceBatch, is_train: bool) -> Tuple[BaseModelOutput, Callable]:
        if is_train:
            raise ValueError(
                f"the transformer runs in {self.title} for inference and cannot be trained: "
                "train or distil the PyTorch pipeline, then export it with `spacy fastbioner export`"
            )
        transformer = self._hfmodel.transformer
        if transformer is None:
            raise ValueError(f"the {self.title} transformer is not initialized or loaded")
        kwargs = {"input_ids": inputs.input_ids, "attention_mask": inputs.attention_mask}
        if inputs.token_type_ids is not None:
            kwargs["token_type_ids"] = inputs.token_type_ids
        return transformer(**kwargs), _no_backprop

    def finish_update(self, optimizer: Any) -> None:
        pass

    def to_device(self, device_type: str, device_id: int) -> None:
        if device_type != "cpu":
            raise ValueError(f"the {self.title} transformer runs on the CPU only")

    def to_bytes(self) -> bytes:
        hf = self._hfmodel
        transformer = hf.transformer
        msg: Dict[str, Any] = {"format": FORMATS[self.runtime], "config": {}, "tokenizer": {}}
        if transformer is None:
            msg["_init_tokenizer_config"] = dict(hf._init_tokenizer_config)
            msg["_init_transformer_config"] = dict(hf._init_transformer_config)
        else:
            msg["config"] = transformer.config.to_dict()
            msg.update(transformer.payload())
            msg["tokenizer"] = _tokenizer_files(hf)
        if self.runtime_choice is not None:
            msg["runtime_choice"] = self.runtime_choice
        return srsly.msgpack_dumps(msg)

    def from_bytes(self, bytes_data: bytes) -> "RuntimeShim":
        msg = srsly.msgpack_loads(bytes_data)
        expected = FORMATS[self.runtime]
        if not isinstance(msg, dict) or msg.get("format") != expected:
            found = msg.get("format") or sorted(msg) if isinstance(msg, dict) else type(msg).__name__
            raise ValueError(
                f"the transformer's saved data is not an {self.title} transformer ({expected}): found {found}. "
                f"A PyTorch pipeline is made into an {self.title} one with `spacy fastbioner export`"
            )
        if not msg["config"]:
            self._hfmodel = HFObjects(None, None, None, msg["_init_tokenizer_config"], msg["_init_transformer_config"])
            self._model = None
            return self
        with make_tempdir() as temp_dir:
            config_file = temp_dir / "config.json"
            srsly.write_json(config_file, msg["config"])
            config = AutoConfig.from_pretrained(config_file)
            tok_dict = dict(msg["tokenizer"])
            tok_kwargs = tok_dict.pop("kwargs", {})
            for name, data in tok_dict.items():
                (temp_dir / Path(name).name).write_bytes(data)
            tokenizer = AutoTokenizer.from_pretrained(str(temp_dir.absolute()), **tok_kwargs)
            vocab_file_contents = None
            if hasattr(tokenizer, "vocab_file"):
                vocab_file = temp_dir / tokenizer.vocab_files_names["vocab_file"]
                vocab_file_contents = vocab_file.read_bytes() if vocab_file.exists() else None
        transformer = RUNTIME_CLASSES[self.runtime].from_payload(msg, config)
        self.runtime_choice = msg.get("runtime_choice")
        warn_if_slow(self.runtime_choice, read_cpu_flags())
        self.set_transformer(
            HFObjects(tokenizer, transformer, vocab_file_contents, SimpleFrozenDict(), SimpleFrozenDict())
        )
        return self


def _tokenizer_files(hf: HFObjects) -> Dict[str, Any]:
    """The tokenizer's files as `HFShim.to_bytes` stores them."""
    tokenizer = hf.tokenizer
    files: Dict[str, Any] = {"kwargs": {"use_fast": tokenizer.is_fast}}
    with make_tempdir() as temp_dir:
        if hasattr(tokenizer, "vocab_file") and hf.vocab_file_contents is not None:
            vocab_file = temp_dir / tokenizer.vocab_files_names["vocab_file"]
            vocab_file.write_bytes(hf.vocab_file_contents)
            tokenizer.vocab_file = str(vocab_file.absolute())
        tokenizer.save_pretrained(str(temp_dir.absolute()))
        for path in temp_dir.glob("**/*"):
            if path.is_file():
                files[path.name] = path.read_bytes()
    return files


def _no_backprop(d_output: Any) -> Any:
    raise ValueError("a transformer exported to an inference runtime cannot be trained")


def _wrapper_forward(model: Model, wordpieces: WordpieceBatch, is_train: bool) -> Tuple[Any, Callable]:
    return model.shims[0](wordpieces, is_train)


def _wrapper_init(model: Model, X: Any = None, Y: Any = None) -> None:
    pass


EXAMPLE_TEXTS = ("hello world", "a b c")


def example_inputs(tokenizer: Any, texts: Sequence[str] = EXAMPLE_TEXTS) -> Dict[str, torch.Tensor]:
    """A small batch of the tokenizer's model inputs, for the export."""
    wordpieces = WordpieceBatch.from_batch_encoding(huggingface_tokenize(tokenizer, list(texts)))
    inputs = {
        "input_ids": torch.from_numpy(wordpieces.input_ids).long(),
        "attention_mask": torch.from_numpy(wordpieces.attention_mask).long(),
    }
    if wordpieces.token_type_ids is not None:
        inputs["token_type_ids"] = torch.from_numpy(wordpieces.token_type_ids).long()
    return inputs


def to_runtime_objects(
    hf_model: HFObjects,
    *,
    runtime: str = "onnx",
    int8: bool,
    per_channel: bool = True,
    calibration: Optional[Sequence[Dict[str, torch.Tensor]]] = None,
    smooth_alpha: float = DEFAULT_ALPHA,
    packed: bool = False,
    int8_scheme: Optional[str] = None,
    reduce_range: bool = False,
    fp32_layers: Sequence[str] = (),
) -> HFObjects:
    """The Hugging Face objects with the PyTorch transformer exported to an
    inference runtime (and quantised to int8 if asked); the tokenizer is kept.

    ONNX Runtime: dynamic int8, or static int8 (`int8_scheme="static"`, QDQ,
    calibrated on the calibration batches); with calibration batches (the
    encoder's keyword inputs), a copy of the encoder has its Linear inputs
    smoothed (`smoothing.py`) first. OpenVINO: the ONNX export read by OpenVINO;
    int8 is NNCF's static quantisation and needs the calibration batches.
    `packed`: the graph takes packed batches (packing.py), and OpenVINO
    calibrates on the calibration batches packed. `reduce_range`: ONNX
    Runtime's int8 with 7-bit weights (`quantize_onnx_static`). `fp32_layers`:
    ONNX Runtime's static int8 with the layers whose node names match these
    patterns left in fp32 (e.g. `onnx_model.FFN_OUTPUT_LAYERS`).
    """
    if runtime not in RUNTIMES:
        raise ValueError(f"unknown runtime {runtime!r}: expected one of {RUNTIMES}")
    scheme = int8_scheme or INT8_SCHEMES[runtime][0]
    if scheme not in INT8_SCHEMES[runtime]:
        raise ValueError(f"unknown int8 scheme {scheme!r} for {runtime}: expected one of {INT8_SCHEMES[runtime]}")
    if calibration is not None and not int8:
        raise ValueError("calibration batches are for the int8 export only")
    if runtime == "onnx" and int8 and scheme == "static" and not calibration:
        raise ValueError("ONNX Runtime's static int8 needs calibration batches of training sentences")
    if reduce_range and (runtime != "onnx" or not int8):
        raise ValueError("reduce_range (7-bit weights) is for ONNX Runtime's int8 export only")
    if fp32_layers and (runtime != "onnx" or not int8 or scheme != "static"):
        raise ValueError("fp32_layers is for ONNX Runtime's static int8 export only")
    if runtime == "openvino" and int8 and not calibration:
        raise ValueError(
            "OpenVINO's int8 is static: it needs calibration batches of training sentences "
            "(`spacy fastbioner export --runtime openvino --calibration TRAIN`)"
        )
    transformer = hf_model.transformer
    config = transformer.config
    if packed:
        check_packable(config)
    if runtime == "onnx" and calibration is not None:
        transformer = copy.deepcopy(transformer)
        smooth_linear_inputs(transformer, calibration, alpha=smooth_alpha)
    model_bytes = export_onnx(transformer, example_inputs(hf_model.tokenizer), packed=packed)
    exported: RuntimeTransformer
    if runtime == "onnx":
        if int8 and scheme == "static":
            batches = [_numpy_feed(b) for b in cast(Sequence[Dict[str, Any]], calibration)]
            if packed:
                batches = [pack_batch(b, max_row_width(config)).inputs for b in batches]
            model_bytes = quantize_onnx_static(
                model_bytes,
                batches,
                per_channel=per_channel,
                qdq=True,
                linear_only=True,
                reduce_range=reduce_range,
                exclude=fp32_layers,
            )
        elif int8:
            model_bytes = quantize_onnx(model_bytes, per_channel=per_channel, reduce_range=reduce_range)
        exported = OnnxTransformer(model_bytes, config)
    else:
        ir = onnx_to_ir(model_bytes)
        if int8:
            feeds = cast(Sequence[Dict[str, Any]], calibration)
            if packed:
                feeds = [pack_batch(b, max_row_width(config)).inputs for b in feeds]
            ir = quantize_ir(ir, feeds)
        exported = OpenVinoTransformer(*ir_bytes(ir), config)
    return HFObjects(hf_model.tokenizer, exported, hf_model.vocab_file_contents)


def _numpy_feed(batch: Dict[str, Any]) -> Dict[str, Any]:
    """A batch of encoder inputs as NumPy arrays (torch tensors converted)."""
    return {k: v.numpy() if isinstance(v, torch.Tensor) else v for k, v in batch.items()}


def _build_runtime_model(
    runtime: str,
    name: str,
    get_spans: Callable,
    tokenizer_config: Optional[Dict[str, Any]],
    transformer_config: Optional[Dict[str, Any]],
    int8: bool,
    per_channel: bool,
    properties: Optional[Dict[str, Any]] = None,
    packed: bool = False,
) -> Model[List[Doc], FullTransformerBatch]:
    model = v3_transformer_model(name, get_spans, tokenizer_config, transformer_config)
    hf_objects = cast(Any, model.layers[0].shims[0])._hfmodel
    model.layers[0] = Model(
        f"{runtime}-transformer",
        _wrapper_forward,
        init=_wrapper_init,
        shims=[RuntimeShim(hf_objects, runtime, properties)],
        dims={"nI": None, "nO": None},
    )
    model.attrs["runtime"] = runtime
    # The same output as TransformerModel's forward, with the span texts and
    # the alignment vectorised (fast_forward.py).
    model._func = inference_forward
    # A module-level function, not a closure: spaCy's multiprocessing with
    # spawn pickles the pipeline, attrs included.
    model.attrs["set_transformer"] = partial(
        set_runtime_transformer, runtime=runtime, int8=int8, per_channel=per_channel, packed=packed
    )
    return model


@registry.architectures(ONNX_ARCHITECTURE)
def build_onnx_transformer_model(
    name: str,
    get_spans: Callable,
    tokenizer_config: Optional[Dict[str, Any]] = None,
    transformer_config: Optional[Dict[str, Any]] = None,
    mixed_precision: bool = False,
    grad_scaler_config: Optional[Dict[str, Any]] = None,
    int8: bool = True,
    per_channel: bool = True,
    packed: bool = False,
) -> Model[List[Doc], FullTransformerBatch]:
    """A `spacy-transformers.TransformerModel.v3` whose encoder runs in ONNX
    Runtime, for inference on CPU. It cannot be trained. A saved pipeline
    (`spacy fastbioner export`) stores the ONNX model inside itself; `int8`
    and `per_channel` only matter when `initialize()` exports the model named
    by `name`. The other settings are TransformerModel.v3's, so that this block
    can replace the transformer model block of a PyTorch pipeline's config.

    name, get_spans, tokenizer_config, transformer_config, mixed_precision,
        grad_scaler_config: TransformerModel.v3's (see `base.v3_transformer_model`).
    int8 (bool): Quantise the Linear layers to int8 (dynamic quantisation) at export.
    per_channel (bool): One int8 scale per output channel rather than per matrix.
    packed (bool): The graph takes packed batches (packing.py); what `export
        --packed` made. A loaded graph is run as it was exported.
    """
    return _build_runtime_model(
        "onnx", name, get_spans, tokenizer_config, transformer_config, int8, per_channel, packed=packed
    )


@registry.architectures(OPENVINO_ARCHITECTURE)
def build_openvino_transformer_model(
    name: str,
    get_spans: Callable,
    tokenizer_config: Optional[Dict[str, Any]] = None,
    transformer_config: Optional[Dict[str, Any]] = None,
    mixed_precision: bool = False,
    grad_scaler_config: Optional[Dict[str, Any]] = None,
    int8: bool = False,
    cache_capacity: Optional[int] = None,
    packed: bool = False,
) -> Model[List[Doc], FullTransformerBatch]:
    """A `spacy-transformers.TransformerModel.v3` whose encoder runs in
    OpenVINO, for inference on CPU. It cannot be trained. A saved pipeline
    (`spacy fastbioner export --runtime openvino`) stores the IR inside
    itself. `initialize()` converts the model named by `name` to fp32 only:
    the int8 form is calibrated on training sentences, which `export` reads.
    `cache_capacity` can be set when loading, e.g. `spacy.load(path,
    config={"components": {"transformer": {"model": {"cache_capacity": 200}}}})`.

    name, get_spans, tokenizer_config, transformer_config, mixed_precision,
        grad_scaler_config: TransformerModel.v3's (see `base.v3_transformer_model`).
    int8 (bool): Whether the stored model is int8 (static, NNCF); records what `export` made.
    cache_capacity (Optional[int]): Entries of the CPU plugin's cache of
        kernels compiled per input shape (`CPU_RUNTIME_CACHE_CAPACITY`);
        OpenVINO's default (5,000) when None. Smaller bounds the memory of a
        long run, and compiles again more of the shapes that come back.
    packed (bool): The graph takes packed batches (packing.py); what `export
        --packed` made. A loaded graph is run as it was exported.
    """
    properties = cache_capacity_properties(cache_capacity)
    return _build_runtime_model(
        "openvino", name, get_spans, tokenizer_config, transformer_config, int8, True, properties, packed
    )


def set_runtime_transformer(
    model: Model,
    hf_model: HFObjects,
    *,
    runtime: str = "onnx",
    int8: bool = True,
    per_channel: bool = True,
    packed: bool = False,
) -> None:
    """The model's `set_transformer` (called by `initialize`): the Hugging
    Face objects, exported to the runtime if they hold a PyTorch transformer."""
    if model.attrs["has_transformer"]:
        raise ValueError("Cannot set second transformer.")
    if not is_runtime_transformer(hf_model.transformer):
        hf_model = to_runtime_objects(hf_model, runtime=runtime, int8=int8, per_channel=per_channel, packed=packed)
    cast(RuntimeShim, model.layers[0].shims[0]).set_transformer(hf_model)
    model.attrs["has_transformer"] = True
    model.set_dim("nO", hf_model.transformer.config.hidden_size)
