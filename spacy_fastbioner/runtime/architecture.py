"""`spacy_fastbioner.OnnxTransformerModel.v1`: the transformer model of
spacy-transformers' `transformer` component, with the encoder run by ONNX
Runtime instead of PyTorch.

It is `spacy-transformers.TransformerModel.v3` (the same span getter,
tokenizer, alignment and truncation, so `doc._.trf_data` and every listener
downstream are unchanged) whose PyTorch wrapper layer is replaced by an
inference-only layer over an `OnnxTransformer`. Its `to_bytes` / `to_disk`
store a msgpack of the Hugging Face config, the ONNX model's bytes and the
tokenizer's files, as `HFShim` stores the config, the weights and the
tokenizer; loading reads JSON, msgpack, protobuf and tokenizer files, never a
pickle. `initialize()` (from `name`, like TransformerModel.v3) loads the
Hugging Face model and exports it, so this block also works in a config that
is trained from nothing but a model name. Its forward pass is
`fast_forward.inference_forward`: the same output with less Python per token.
"""

import copy
from functools import partial
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple, cast

import srsly
import torch
from spacy.tokens import Doc
from spacy.util import SimpleFrozenDict, registry
from spacy_transformers.data_classes import FullTransformerBatch, HFObjects, WordpieceBatch
from spacy_transformers.layers.transformer_model import TransformerModel, huggingface_tokenize
from spacy_transformers.util import make_tempdir
from thinc.api import Model
from thinc.shims import Shim
from transformers import AutoConfig, AutoTokenizer
from transformers.modeling_outputs import BaseModelOutput

from .fast_forward import inference_forward
from .onnx_model import OnnxTransformer, export_onnx, quantize_onnx
from .smoothing import DEFAULT_ALPHA, smooth_linear_inputs

ONNX_ARCHITECTURE = "spacy_fastbioner.OnnxTransformerModel.v1"
_FORMAT = "spacy_fastbioner.onnx.v1"


class OnnxShim(Shim):
    """Holds the ONNX transformer and the Hugging Face tokenizer where
    spacy-transformers' `HFShim` holds the PyTorch model and the tokenizer
    (`shim._hfmodel`), and serialises them without pickle."""

    def __init__(self, hf_model: HFObjects) -> None:
        super().__init__(hf_model.transformer)
        self._hfmodel = hf_model

    def __call__(self, inputs: WordpieceBatch, is_train: bool) -> Tuple[BaseModelOutput, Callable]:
        if is_train:
            raise ValueError(
                "the transformer runs in ONNX Runtime for inference and cannot be trained: "
                "train or distil the PyTorch pipeline, then export it with `spacy fastbioner export`"
            )
        transformer = self._hfmodel.transformer
        if transformer is None:
            raise ValueError("the ONNX transformer is not initialized or loaded")
        kwargs = {"input_ids": inputs.input_ids, "attention_mask": inputs.attention_mask}
        if inputs.token_type_ids is not None:
            kwargs["token_type_ids"] = inputs.token_type_ids
        return transformer(**kwargs), _no_backprop

    def finish_update(self, optimizer: Any) -> None:
        pass

    def to_device(self, device_type: str, device_id: int) -> None:
        if device_type != "cpu":
            raise ValueError("the ONNX transformer runs on the CPU only")

    def to_bytes(self) -> bytes:
        hf = self._hfmodel
        transformer = hf.transformer
        msg: Dict[str, Any] = {"format": _FORMAT, "config": {}, "onnx": b"", "tokenizer": {}}
        if transformer is None:
            msg["_init_tokenizer_config"] = dict(hf._init_tokenizer_config)
            msg["_init_transformer_config"] = dict(hf._init_transformer_config)
        else:
            msg["config"] = transformer.config.to_dict()
            msg["onnx"] = transformer.model_bytes
            msg["tokenizer"] = _tokenizer_files(hf)
        return srsly.msgpack_dumps(msg)

    def from_bytes(self, bytes_data: bytes) -> "OnnxShim":
        msg = srsly.msgpack_loads(bytes_data)
        if not isinstance(msg, dict) or msg.get("format") != _FORMAT:
            found = sorted(msg) if isinstance(msg, dict) else type(msg).__name__
            raise ValueError(
                f"the transformer's saved data is not an ONNX transformer ({_FORMAT}): found {found}. "
                "A PyTorch pipeline is made into an ONNX one with `spacy fastbioner export`"
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
        transformer = OnnxTransformer(msg["onnx"], config)
        self._hfmodel = HFObjects(tokenizer, transformer, vocab_file_contents, SimpleFrozenDict(), SimpleFrozenDict())
        self._model = transformer
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
    raise ValueError("the ONNX transformer cannot be trained")


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


def to_onnx_objects(
    hf_model: HFObjects,
    *,
    int8: bool,
    per_channel: bool = True,
    calibration: Optional[Sequence[Dict[str, torch.Tensor]]] = None,
    smooth_alpha: float = DEFAULT_ALPHA,
) -> HFObjects:
    """The Hugging Face objects with the PyTorch transformer exported to ONNX
    (and quantised to int8 if asked); the tokenizer is kept. With calibration
    batches (the encoder's keyword inputs), a copy of the encoder has its
    Linear inputs smoothed (`smoothing.py`) before the int8 export."""
    transformer = hf_model.transformer
    if calibration is not None:
        if not int8:
            raise ValueError("smoothing with calibration batches is for the int8 export only")
        transformer = copy.deepcopy(transformer)
        smooth_linear_inputs(transformer, calibration, alpha=smooth_alpha)
    model_bytes = export_onnx(transformer, example_inputs(hf_model.tokenizer))
    if int8:
        model_bytes = quantize_onnx(model_bytes, per_channel=per_channel)
    transformer = OnnxTransformer(model_bytes, hf_model.transformer.config)
    return HFObjects(hf_model.tokenizer, transformer, hf_model.vocab_file_contents)


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
) -> Model[List[Doc], FullTransformerBatch]:
    """A `spacy-transformers.TransformerModel.v3` whose encoder runs in ONNX
    Runtime, for inference on CPU. It cannot be trained. A saved pipeline
    (`spacy fastbioner export`) stores the ONNX model inside itself; `int8`
    and `per_channel` only matter when `initialize()` exports the model named
    by `name`. The other settings are TransformerModel.v3's, so that this block
    can replace the transformer model block of a PyTorch pipeline's config.

    name (str): The Hugging Face model name or folder, read only by `initialize`.
    get_spans (Callable[[List[Doc]], List[List[Span]]]): The span getter.
    tokenizer_config (Optional[Dict[str, Any]]): Settings for the Hugging Face tokenizer.
    transformer_config (Optional[Dict[str, Any]]): Settings for the transformer's config.
    mixed_precision (bool): Kept for compatibility with TransformerModel.v3 (no effect).
    grad_scaler_config (Optional[Dict[str, Any]]): Kept for compatibility with TransformerModel.v3 (no effect).
    int8 (bool): Quantise the Linear layers to int8 (dynamic quantisation) at export.
    per_channel (bool): One int8 scale per output channel rather than per matrix.
    """
    model = TransformerModel(name, get_spans, dict(tokenizer_config or {}), dict(transformer_config or {}))
    hf_objects = cast(Any, model.layers[0].shims[0])._hfmodel
    model.layers[0] = Model(
        "onnx-transformer",
        _wrapper_forward,
        init=_wrapper_init,
        shims=[OnnxShim(hf_objects)],
        dims={"nI": None, "nO": None},
    )
    model.attrs["runtime"] = "onnx"
    # The same output as TransformerModel's forward, with the span texts and
    # the alignment vectorised (fast_forward.py).
    model._func = inference_forward

    # A module-level function, not a closure: spaCy's multiprocessing with
    # spawn pickles the pipeline, attrs included.
    model.attrs["set_transformer"] = partial(set_onnx_transformer, int8=int8, per_channel=per_channel)
    return model


def set_onnx_transformer(model: Model, hf_model: HFObjects, *, int8: bool = True, per_channel: bool = True) -> None:
    """The model's `set_transformer` (called by `initialize`): the Hugging
    Face objects, exported to ONNX if they hold a PyTorch transformer."""
    if model.attrs["has_transformer"]:
        raise ValueError("Cannot set second transformer.")
    if not isinstance(hf_model.transformer, OnnxTransformer):
        hf_model = to_onnx_objects(hf_model, int8=int8, per_channel=per_channel)
    shim = cast(OnnxShim, model.layers[0].shims[0])
    shim._hfmodel = hf_model
    shim._model = hf_model.transformer
    model.attrs["has_transformer"] = True
    model.set_dim("nO", hf_model.transformer.config.hidden_size)
