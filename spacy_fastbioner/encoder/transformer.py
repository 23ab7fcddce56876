"""A pipeline's spacy-transformers `transformer` component: finding it, the
settings of its windows and their check against the encoder's positions, and
counting its parameters (and the pipeline's), int8 weights included, whether
the encoder runs in PyTorch or in ONNX Runtime (`runtime/`).

spacy-transformers and the runtime are imported inside the functions: they
import `transformers`, which `import spacy_fastbioner` must not (see `__init__.py`).
"""

import warnings
from typing import TYPE_CHECKING, Any, Dict, List, Optional, TypedDict, cast

import torch
from spacy.language import Language

if TYPE_CHECKING:
    from spacy_transformers import Transformer
    from spacy_transformers.layers import TransformerModel
    from transformers import PreTrainedModel, PreTrainedTokenizerBase


# A tokenizer's `model_max_length` from here up means none was set
# (transformers' VERY_LARGE_INTEGER is 1e30).
UNSET_MAX_LENGTH = 10**9
# Model types whose position ids start after the padding index (RoBERTa's
# family): the first `pad_token_id + 1` position embeddings hold no token.
OFFSET_POSITIONS = ("roberta", "xlm-roberta", "camembert", "longformer")


class ParameterCounts(TypedDict):
    """A pipeline's parameter counts, as `count_parameters` returns them."""

    transformer: Optional[int]  # None for a pipeline without a transformer
    total: int


def transformer_names(nlp: Language) -> List[str]:
    """The names of the pipeline's spacy-transformers `Transformer`
    components, disabled ones included, in pipeline order.

    nlp (Language): The pipeline.
    RETURNS (List[str]): The names.
    """
    from spacy_transformers import Transformer

    return [name for name, proc in nlp.components if isinstance(proc, Transformer)]


def set_max_batch_items(nlp: Language, max_batch_items: int) -> None:
    """Set `max_batch_items` (padded wordpieces per forward pass) of every
    transformer component; a pipeline without one (e.g. the CNN baseline)
    is left as it is, so that one setting serves every model of a benchmark.

    nlp (Language): The pipeline.
    max_batch_items (int): The padded wordpieces per forward pass.
    """
    for name in transformer_names(nlp):
        cast("Transformer", nlp.get_pipe(name)).cfg["max_batch_items"] = max_batch_items


def find_transformer(nlp: Language) -> "Transformer":
    """The pipeline's first active spacy-transformers `Transformer` component.

    nlp (Language): The pipeline.
    RETURNS (Transformer): The component; `hf_model` gives its Hugging Face model.
    """
    from spacy_transformers import Transformer

    for _, proc in nlp.pipeline:
        if isinstance(proc, Transformer):
            return proc
    raise ValueError(f"the pipeline {nlp.pipe_names} has no spacy-transformers 'transformer' component")


def window_settings(nlp: Language) -> Dict[str, Any]:
    """What decides the windows that the pipeline's transformer reads a doc
    in: its span getter, as configured (the registered name and its
    settings, e.g. window and stride), and the wordpiece limit at which
    spacy-transformers truncates a window (the tokenizer's
    `model_max_length`; None where the tokenizer sets none).

    nlp (Language): A pipeline with an initialized transformer.
    RETURNS (Dict[str, Any]): "span_getter" (a dict) and "max_length" (an int
        or None), JSON-serialisable.
    """
    trf = find_transformer(nlp)
    name = next(name for name, proc in nlp.pipeline if proc is trf)
    get_spans = nlp.get_pipe_config(name).get("model", {}).get("get_spans", {})
    tokenizer = hf_tokenizer(trf)
    max_length = getattr(tokenizer, "model_max_length", None)
    # transformers stands for "no limit" by a huge integer (1e30) that JSON
    # writers refuse.
    if not isinstance(max_length, int) or max_length >= UNSET_MAX_LENGTH:
        max_length = None
    return {"span_getter": {key: get_spans[key] for key in sorted(get_spans)}, "max_length": max_length}


def check_positions(nlp: Language) -> None:
    """Make sure that no window of the pipeline's initialized transformers
    reaches past the encoder's position embeddings: a window's wordpieces
    beyond them would index past the embedding table (an IndexError on the
    CPU, a device-side assert on a GPU).

    - A span getter whose `window` (in tokens) plus the tokenizer's special
      tokens exceeds the positions is an error: even at one wordpiece per
      token its windows would not fit.
    - A tokenizer whose `model_max_length` is unset (as in a folder saved
      without it) or over the positions gets the number of positions, with a
      warning, so that spacy-transformers truncates a window of more
      wordpieces (dropping its last ones) rather than failing.

    nlp (Language): The pipeline; transformers not initialized yet are skipped.
    """
    for name in transformer_names(nlp):
        trf = cast("Transformer", nlp.get_pipe(name))
        model = cast("TransformerModel", trf.model)
        tokenizer, transformer = model.tokenizer, model.transformer
        n_positions = getattr(getattr(transformer, "config", None), "max_position_embeddings", None)
        if tokenizer is None or not isinstance(n_positions, int):
            continue
        config = transformer.config
        source = getattr(config, "_name_or_path", "") or model.attrs.get("name", "?")
        if getattr(config, "model_type", "") in OFFSET_POSITIONS:
            n_positions -= int(getattr(config, "pad_token_id", 1) or 0) + 1
        n_special = int(tokenizer.num_special_tokens_to_add(pair=False))
        get_spans = nlp.get_pipe_config(name).get("model", {}).get("get_spans", {})
        window = get_spans.get("window")
        if isinstance(window, int) and window + n_special > n_positions:
            raise ValueError(
                f"[components.{name}.model.get_spans] {get_spans.get('@span_getters')} cuts windows of "
                f"{window} tokens: with the tokenizer's {n_special} special tokens, even one wordpiece per "
                f"token needs {window + n_special} positions, but the encoder {source} has {n_positions} "
                f"(max_position_embeddings). Expected window <= {n_positions - n_special}, and less for "
                "words of several wordpieces (biomedical text: about 1.6 per word)"
            )
        max_length = getattr(tokenizer, "model_max_length", None)
        if not isinstance(max_length, int) or max_length > n_positions:
            found = f"sets model_max_length {max_length}"
            if not isinstance(max_length, int) or max_length >= UNSET_MAX_LENGTH:
                found = "sets no model_max_length"
            warnings.warn(
                f"[{name}] the tokenizer of {source} {found}, over the encoder's {n_positions} positions: "
                f"set to {n_positions}, so that a window of more wordpieces is truncated (its last "
                "wordpieces dropped) instead of indexing past the position embeddings",
                stacklevel=2,
            )
            tokenizer.model_max_length = n_positions


def hf_model(trf: "Transformer") -> "PreTrainedModel":
    """The Hugging Face model of a `Transformer` component (int8 or fp32).

    trf (Transformer): The component, e.g. `find_transformer(nlp)`.
    RETURNS (PreTrainedModel): Its model, e.g. a `BertModel`.
    """
    return cast("TransformerModel", trf.model).transformer


def hf_tokenizer(trf: "Transformer") -> Optional["PreTrainedTokenizerBase"]:
    """The Hugging Face tokenizer of a `Transformer` component.

    trf (Transformer): The component, e.g. `find_transformer(nlp)`.
    RETURNS (Optional[PreTrainedTokenizerBase]): Its wordpiece tokenizer, or
        None before the component is initialized.
    """
    return cast("TransformerModel", trf.model).tokenizer


def count_torch_parameters(module: torch.nn.Module) -> int:
    """The number of weights of a PyTorch model, quantised or not: int8
    Linear layers keep their weights in packed form, not as parameters.

    module (torch.nn.Module): The model, e.g. a Hugging Face `BertModel`.
    RETURNS (int): The number of weights.
    """
    n = sum(p.numel() for p in module.parameters())
    for layer in module.modules():
        if isinstance(layer, torch.ao.nn.quantized.dynamic.Linear):
            weight, bias = layer._weight_bias()
            n += weight.numel() + (bias.numel() if bias is not None else 0)
    return n


def count_parameters(nlp: Language) -> ParameterCounts:
    """The parameters of a pipeline: its transformer's (fp32 or int8, in
    PyTorch or ONNX Runtime) and all of them (the transformer's and the thinc
    models' of the other components).

    nlp (Language): The pipeline.
    RETURNS (ParameterCounts): "transformer" (None for a pipeline without a
        transformer) and "total".
    RAISES (ImportError): For an ONNX transformer without the onnx package:
        counting its weights reads the ONNX graph, running it does not.
    """
    from spacy_transformers import Transformer

    n_thinc = 0
    n_trf: Optional[int] = None
    for _, proc in nlp.pipeline:
        if isinstance(proc, Transformer):
            n_trf = (n_trf or 0) + _count_transformer(hf_model(proc))
        elif hasattr(proc, "model"):
            for node in proc.model.walk():
                n_thinc += sum(int(node.get_param(p).size) for p in node.param_names if node.has_param(p))
    return {"transformer": n_trf, "total": (n_trf or 0) + n_thinc}


def _count_transformer(model: object) -> int:
    if isinstance(model, torch.nn.Module):
        return count_torch_parameters(model)
    from ..runtime.architecture import is_runtime_transformer

    if is_runtime_transformer(model):
        return cast(Any, model).num_parameters()
    raise TypeError(f"cannot count the parameters of a {type(model).__name__} transformer")
