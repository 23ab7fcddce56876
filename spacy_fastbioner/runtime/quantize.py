"""int8 dynamic quantisation of a pipeline's transformer, for fast CPU inference.

spacy-transformers saves the Hugging Face model as a `state_dict` and rebuilds it
with `AutoModel.from_config` before loading the weights, which cannot restore a
quantised model. `spacy_fastbioner.QuantizedTransformerModel.v1` is the same
model as `spacy-transformers.TransformerModel.v3` with a shim that quantises the
rebuilt model before loading int8 weights (or after loading fp32 ones). Recorded
in the pipeline's config by `quantize_pipeline`, it makes `spacy.load` return the
quantised pipeline, and its weights are stored in int8.

CPU inference settings (measured by `spacy fastbioner benchmark`; the figures
are in the README):
- Threads: `torch.set_num_threads(n)` (or OMP_NUM_THREADS) with n at most the
  number of free cores: PyTorch's spinning OpenMP threads make oversubscribed
  cores far slower than one thread. One process per core with one thread each
  is the most robust way to use a many-core machine.
- Padding: `Transformer.pipe` sorts each `nlp.pipe` batch by length and cuts it
  into sub-batches of at most `max_batch_items` padded tokens. spaCy's 4096
  keeps a batch of 64 sentences in one sub-batch, padded to the longest; 512
  sorts them into sub-batches of similar lengths, with less padding. Larger
  `nlp.pipe(batch_size=...)` sorts over more docs.
"""

import warnings
import zipfile
from contextlib import contextmanager
from functools import partial
from io import BytesIO
from typing import Any, Callable, Dict, Iterator, List, Optional, Tuple, cast

import srsly
import torch
from spacy.language import Language
from spacy.tokens import Doc
from spacy.util import load_model_from_config, registry
from spacy_transformers.data_classes import FullTransformerBatch, HFObjects
from spacy_transformers.layers.hf_shim import HFShim
from spacy_transformers.layers.transformer_model import (
    TransformerModel,
    set_pytorch_transformer,
)
from thinc.api import Model
from thinc.types import ArgsKwargs
from transformers import AutoModel, PretrainedConfig

from ..encoder.transformer import find_transformer
from .base import v3_transformer_model

QUANTIZED_ARCHITECTURE = "spacy_fastbioner.QuantizedTransformerModel.v1"
SOURCE_ARCHITECTURE = "spacy-transformers.TransformerModel.v3"
DTYPES = {"qint8": torch.qint8}
# torch >= 2.9 warns on every use of torch.ao's eager quantisation and of
# quantised tensors, which still work; these warnings say nothing to a user.
_TORCH_AO_WARNINGS = (
    r"torch\.ao\.quantization is deprecated",
    r"torch\.quantize_per_tensor.* are deprecated",
    r"TypedStorage is deprecated",
)
_STRICT_LOAD_WARNING = "Error loading saved torch state_dict with strict=True"


@contextmanager
def _quiet_torch_ao() -> Iterator[None]:
    with warnings.catch_warnings():
        for message in _TORCH_AO_WARNINGS:
            warnings.filterwarnings("ignore", message=message)
        yield


def quantize_transformer(
    transformer: torch.nn.Module, dtype: str = "qint8", *, inplace: bool = False
) -> torch.nn.Module:
    """Quantise the `nn.Linear` layers of a PyTorch model to int8 weights, one
    scale per output channel, with dynamic (per-batch) activation quantisation,
    for CPU inference. Per-channel scales cost no speed and lose less accuracy
    than one scale per matrix.

    transformer (torch.nn.Module): The model, e.g. a Hugging Face `BertModel`.
    dtype (str): The weight type; only "qint8".
    inplace (bool): Change the model itself instead of a copy.
    RETURNS (torch.nn.Module): The quantised model, in eval mode.
    """
    if dtype not in DTYPES:
        raise ValueError(f"unknown quantisation dtype {dtype!r}: expected one of {sorted(DTYPES)}")
    transformer.eval()
    with _quiet_torch_ao():
        return torch.ao.quantization.quantize_dynamic(
            transformer,
            {torch.nn.Linear: torch.ao.quantization.per_channel_dynamic_qconfig},
            dtype=DTYPES[dtype],
            inplace=inplace,
        )


def is_quantized(transformer: torch.nn.Module) -> bool:
    """RETURNS (bool): Whether the model has dynamically quantised Linear layers."""
    return any(isinstance(m, torch.ao.nn.quantized.dynamic.Linear) for m in transformer.modules())


def _is_quantized_state(state: bytes) -> bool:
    """Whether a `torch.save`d state_dict holds quantised Linear weights,
    read from the key names in its pickle, without loading the tensors."""
    if not state:
        return False
    with zipfile.ZipFile(BytesIO(state)) as archive:
        for name in archive.namelist():
            if name.endswith("data.pkl"):
                return b"_packed_params" in archive.read(name)
    return False


class _QuantizedAutoModel:
    """Stands for `AutoModel` in `HFShim.from_bytes`: builds the model from its
    config and quantises it, so that int8 weights can be loaded into it."""

    def __init__(self, dtype: str) -> None:
        self.dtype = dtype

    def from_config(self, config: PretrainedConfig) -> torch.nn.Module:
        return quantize_transformer(AutoModel.from_config(config), self.dtype, inplace=True)


class QuantizedHFShim(HFShim):
    """An `HFShim` for an int8 inference-only Hugging Face model. It loads
    saved int8 weights, or quantises saved fp32 weights on load, predicts under
    `torch.inference_mode` and refuses to train.
    """

    def __init__(self, model: HFObjects, *, dtype: str = "qint8", **kwargs: Any) -> None:
        super().__init__(model, **kwargs)
        self.dtype = dtype

    def predict(self, inputs: ArgsKwargs) -> Any:
        self._model.eval()
        with torch.inference_mode():
            return self._model(*inputs.args, **inputs.kwargs)

    def begin_update(self, inputs: ArgsKwargs):
        raise ValueError(
            "the transformer is quantised to int8 for inference and cannot be "
            "trained: train or distil the fp32 pipeline, then quantise it with "
            "`spacy fastbioner quantize`"
        )

    def from_bytes(self, bytes_data: bytes) -> "QuantizedHFShim":
        msg = srsly.msgpack_loads(bytes_data)
        int8_state = bool(msg["config"]) and _is_quantized_state(msg["state"])
        self.model_cls = _QuantizedAutoModel(self.dtype) if int8_state else AutoModel
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            with _quiet_torch_ao():
                super().from_bytes(bytes_data)
        for warning in caught:
            if _STRICT_LOAD_WARNING in str(warning.message):
                raise ValueError(
                    "the saved transformer weights do not fit the quantised "
                    f"model ({'int8' if int8_state else 'fp32'} weights were found)"
                )
            warnings.warn_explicit(warning.message, warning.category, warning.filename, warning.lineno)
        if not int8_state and self._model is not None:
            self._set_quantized(quantize_transformer(self._model, self.dtype, inplace=True))
        return self

    def _set_quantized(self, transformer: torch.nn.Module) -> None:
        self._model = transformer
        self._hfmodel.transformer = transformer

    def __reduce__(self) -> Tuple[Callable[[bytes, str], "QuantizedHFShim"], Tuple[bytes, str]]:
        # Pickled as its bytes: `nlp.pipe(n_process=N)` pickles the pipeline
        # for workers started by spawn (macOS, Windows), and the pickler that
        # shares torch storages with child processes fails on int8 weights.
        return _unpickle_quantized_shim, (self.to_bytes(), self.dtype)


def _unpickle_quantized_shim(data: bytes, dtype: str) -> QuantizedHFShim:
    shim = QuantizedHFShim(HFObjects(None, None, None, {}, {}), dtype=dtype)
    return shim.from_bytes(data)


@registry.architectures(QUANTIZED_ARCHITECTURE)
def build_quantized_transformer_model(
    name: str,
    get_spans: Callable,
    tokenizer_config: Optional[Dict[str, Any]] = None,
    transformer_config: Optional[Dict[str, Any]] = None,
    mixed_precision: bool = False,
    grad_scaler_config: Optional[Dict[str, Any]] = None,
    dtype: str = "qint8",
) -> Model[List[Doc], FullTransformerBatch]:
    """A `spacy-transformers.TransformerModel.v3` whose Linear layers are
    quantised to int8 (dynamic quantisation), for inference on CPU. It cannot
    be trained. Loading quantises the saved weights unless they are int8
    already, so that this block (with the other TransformerModel.v3 settings)
    can also replace the transformer model block of an fp32 pipeline's config.

    name, get_spans, tokenizer_config, transformer_config, mixed_precision,
        grad_scaler_config: TransformerModel.v3's (see `base.v3_transformer_model`).
    dtype (str): The weight type of the quantised Linear layers: "qint8".
    """
    if dtype not in DTYPES:
        raise ValueError(f"unknown quantisation dtype {dtype!r}: expected one of {sorted(DTYPES)}")
    model = v3_transformer_model(
        name, get_spans, tokenizer_config, transformer_config, mixed_precision, grad_scaler_config
    )
    wrapper = model.layers[0]
    old_shim = cast(HFShim, wrapper.shims[0])
    wrapper.shims[0] = QuantizedHFShim(
        old_shim._hfmodel,
        dtype=dtype,
        mixed_precision=mixed_precision,
        grad_scaler_config=dict(grad_scaler_config or {}),
    )

    # A partial of a module-level function, not a closure: `nlp.pipe(n_process=N)`
    # pickles the pipeline for its workers under the spawn start method.
    model.attrs["set_transformer"] = partial(set_quantized_transformer, dtype=dtype)
    return model


def set_quantized_transformer(model: TransformerModel, hf_model: HFObjects, *, dtype: str = "qint8") -> None:
    """Quantise a Hugging Face model and set it as the transformer of a
    `TransformerModel` (its `set_transformer` hook, called by `initialize`).

    model (TransformerModel): The thinc model.
    hf_model (HFObjects): The Hugging Face tokenizer and model.
    dtype (str): The weight type: "qint8".
    """
    hf_model.transformer = quantize_transformer(hf_model.transformer, dtype, inplace=True)
    set_pytorch_transformer(model, hf_model)


def quantize_pipeline(nlp: Language, *, dtype: str = "qint8", max_batch_items: Optional[int] = None) -> Language:
    """A copy of a trained pipeline whose transformer's Linear layers are
    quantised to int8. Its config names `spacy_fastbioner.QuantizedTransformerModel.v1`,
    so that the saved pipeline loads quantised with `spacy.load`, with int8
    weights on disk. The given pipeline is not changed.

    nlp (Language): A trained pipeline with a spacy-transformers transformer.
    dtype (str): The weight type: "qint8".
    max_batch_items (Optional[int]): A new `max_batch_items` for the
        transformer component: the padded size of the length-sorted sub-batches
        that `Transformer.pipe` cuts each batch into. spaCy's 4096 keeps a batch
        of 64 sentences whole, padded to its longest; 512 sorts it into
        sub-batches of similar lengths. Kept as it is when None.
    RETURNS (Language): The quantised pipeline.
    """
    trf = find_transformer(nlp)
    config = nlp.config.copy()
    model_cfg = config["components"][trf.name]["model"]
    architecture = model_cfg.get("@architectures")
    if architecture == QUANTIZED_ARCHITECTURE:
        raise ValueError(f"the pipeline's {trf.name!r} component is quantised already")
    if architecture != SOURCE_ARCHITECTURE:
        raise ValueError(
            f"cannot quantise the {trf.name!r} component: its model is "
            f"{architecture!r}, expected {SOURCE_ARCHITECTURE!r}"
        )
    model_cfg["@architectures"] = QUANTIZED_ARCHITECTURE
    model_cfg["dtype"] = dtype
    if max_batch_items is not None:
        if max_batch_items < 1:
            raise ValueError(f"max_batch_items must be positive, got {max_batch_items}")
        config["components"][trf.name]["max_batch_items"] = max_batch_items
    quantized = load_model_from_config(config, auto_fill=False, validate=False)
    quantized.from_bytes(nlp.to_bytes())
    if max_batch_items is not None:
        # The component's saved cfg, loaded by from_bytes, wins over its config.
        find_transformer(quantized).cfg["max_batch_items"] = max_batch_items
    meta = dict(nlp.meta)
    meta["name"] = f"{nlp.meta.get('name', 'pipeline')}_{dtype}"
    meta["fastbioner"] = {**dict(nlp.meta.get("fastbioner", {})), "quantized": dtype}
    quantized.meta.update(meta)
    return quantized
