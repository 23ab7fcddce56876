"""PyTorch's own inference options, applied in the benchmark's process to a
loaded fp32 pipeline so that they are timed beside the other rows:
`NAME=PATH#compile`, `#eager`, `#sdpa`.

- compile: `torch.compile(model, dynamic=True)` (inductor; the first batches
  compile, so give the benchmark warm-up batches).
- eager / sdpa: the model rebuilt with that attention implementation
  (transformers picks SDPA for BERT by default where torch has it).

Static int8 through PT2E (`torch.ao.quantization.quantize_pt2e`) is not
offered: torch 2.13 no longer has it (it moved to the torchao package).
"""

from typing import Any, Tuple, cast

import torch
from spacy.language import Language

from ..encoder.transformer import hf_model

VARIANTS = ("compile", "eager", "sdpa")


def split_variant(path: str) -> Tuple[str, str]:
    """ "training/student#compile" -> ("training/student", "compile"); no variant: ""."""
    base, sep, variant = str(path).rpartition("#")
    if not sep:
        return str(path), ""
    if variant not in VARIANTS:
        raise ValueError(f"unknown PyTorch variant {variant!r} in {path!r}: expected one of {VARIANTS}")
    return base, variant


def _set_model(trf: Any, model: torch.nn.Module) -> None:
    shim = trf.model.layers[0].shims[0]
    shim._model = model
    shim._hfmodel.transformer = model


def apply_torch_variant(nlp: Language, trf: Any, variant: str) -> None:
    """Change the pipeline's PyTorch transformer in place.

    nlp (Language): The pipeline (fp32, PyTorch).
    trf: Its transformer component.
    variant (str): One of VARIANTS.
    """
    from transformers import AutoModel

    hf = hf_model(trf)
    if not isinstance(hf, torch.nn.Module) or any(
        isinstance(m, torch.ao.nn.quantized.dynamic.Linear) for m in hf.modules()
    ):
        raise ValueError(f"the {variant!r} variant needs an fp32 PyTorch transformer")
    if variant == "compile":
        _set_model(trf, cast(torch.nn.Module, torch.compile(hf.eval(), dynamic=True)))
    elif variant in ("eager", "sdpa"):
        rebuilt = AutoModel.from_config(hf.config, attn_implementation=variant)
        rebuilt.load_state_dict(hf.state_dict())
        _set_model(trf, rebuilt.eval())
    else:
        raise ValueError(f"unknown PyTorch variant {variant!r}: expected one of {VARIANTS}")
