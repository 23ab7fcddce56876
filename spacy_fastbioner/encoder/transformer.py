"""A pipeline's spacy-transformers `transformer` component: finding it, and
counting its parameters (and the pipeline's), int8 weights included, whether
the encoder runs in PyTorch or in ONNX Runtime (`runtime/`).

spacy-transformers and the runtime are imported inside the functions: they
import `transformers`, which `import spacy_fastbioner` must not (see `__init__.py`).
"""

from typing import TYPE_CHECKING, Any, List, Optional, TypedDict, cast

import torch
from spacy.language import Language

if TYPE_CHECKING:
    from spacy_transformers import Transformer
    from spacy_transformers.layers import TransformerModel
    from transformers import PreTrainedModel, PreTrainedTokenizerBase


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
