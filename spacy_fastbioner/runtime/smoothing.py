"""Activation smoothing before dynamic int8: SmoothQuant (Xiao et al., 2023)
for post-LayerNorm BERT.

Dynamic int8 quantises each Linear layer's input with one scale per batch,
so a few outlier channels (in MiniLM's FFN inputs one channel reaches 14x the
median channel's range, and the GELU outputs 10-20x) set the scale and leave
the other channels a handful of int8 levels. SmoothQuant divides each input
channel j by s_j = max|X_j|^alpha / max|W_j|^(1 - alpha), measured on
calibration batches, and multiplies the weight's column j by s_j: the layer
computes the same function in fp32, and the range moves from the activations
into the weights, which are quantised per output channel.

SmoothQuant folds 1/s into the LayerNorm before the layer. In BERT the
LayerNorm's output is also the residual stream, and the FFN's second layer
follows GELU, so here 1/s stays an explicit elementwise product before the
MatMul (`SmoothedLinear`): one multiplication per activation, and ONNX
Runtime still quantises the MatMul with its now smoother input.
"""

from typing import Dict, Iterable, List, Sequence

import torch

# The encoder's Linear layers, by the end of their module names in Hugging
# Face BERT: the attention's query, key, value and output, and the FFN's two.
TARGETS = ("query", "key", "value", "attention.output.dense", "intermediate.dense", "output.dense")
DEFAULT_ALPHA = 0.9
# Bounds of s: a dead channel (max 0) must not blow up the weights.
MIN_SCALE, MAX_SCALE = 1e-2, 1e2


class SmoothedLinear(torch.nn.Module):
    """`linear(x * inv_scale)`, where the linear layer's weight columns were
    multiplied by the scale: the same function, with a smoother input for
    the MatMul."""

    inv_scale: torch.Tensor

    def __init__(self, linear: torch.nn.Linear, scale: torch.Tensor) -> None:
        super().__init__()
        self.linear = linear
        self.register_buffer("inv_scale", (1.0 / scale).to(linear.weight.dtype))
        with torch.no_grad():
            linear.weight.mul_(scale.to(linear.weight.dtype))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(x * self.inv_scale)


def target_layers(model: torch.nn.Module, targets: Sequence[str] = TARGETS) -> List[str]:
    """The names of the encoder's Linear layers that `smooth_linear_inputs`
    rescales (not the pooler, whose output the pipeline does not use)."""
    return [
        name
        for name, module in model.named_modules()
        if isinstance(module, torch.nn.Linear)
        and ".layer." in f".{name}"
        and any(name.endswith(target) for target in targets)
    ]


def input_ranges(
    model: torch.nn.Module, batches: Iterable[Dict[str, torch.Tensor]], names: Sequence[str]
) -> Dict[str, torch.Tensor]:
    """The largest absolute value of each input channel of the named layers
    over the batches (the model's keyword inputs), padding positions included,
    as dynamic quantisation sees them."""
    ranges: Dict[str, torch.Tensor] = {}

    def hook(name: str):
        def record(module: torch.nn.Module, inputs: tuple, output: torch.Tensor) -> None:
            x = inputs[0].detach().abs().reshape(-1, inputs[0].shape[-1]).amax(0)
            ranges[name] = torch.maximum(ranges[name], x) if name in ranges else x

        return record

    handles = [model.get_submodule(name).register_forward_hook(hook(name)) for name in names]
    model.eval()
    try:
        with torch.no_grad():
            for kwargs in batches:
                model(**kwargs)
    finally:
        for handle in handles:
            handle.remove()
    missing = [name for name in names if name not in ranges]
    if missing:
        raise ValueError(f"no calibration input reached the layers {missing}: are the calibration batches empty?")
    return ranges


def smooth_linear_inputs(
    model: torch.nn.Module,
    batches: Iterable[Dict[str, torch.Tensor]],
    *,
    alpha: float = DEFAULT_ALPHA,
    targets: Sequence[str] = TARGETS,
) -> List[str]:
    """Replace the encoder's Linear layers by `SmoothedLinear` ones, with
    scales from the calibration batches, in place.

    model (torch.nn.Module): A Hugging Face encoder (fp32), e.g. a copy of the
        pipeline's `BertModel`.
    batches (Iterable[Dict[str, torch.Tensor]]): Its keyword inputs for some
        batches of training sentences.
    alpha (float): How much of the range moves into the weights (0: none, 1:
        all); SmoothQuant's default is 0.5, 0.9 changed the fewest entities of
        MiniLM students on NCBI-disease (README: Fast inference).
    targets (Sequence[str]): Name endings of the layers to smooth.
    RETURNS (List[str]): The names of the smoothed layers.
    """
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be in [0, 1], got {alpha}")
    names = target_layers(model, targets)
    if not names:
        raise ValueError(f"the model has no Linear layers named like {list(targets)} to smooth")
    ranges = input_ranges(model, batches, names)
    for name in names:
        parent_name, _, attr = name.rpartition(".")
        parent = model.get_submodule(parent_name)
        linear = getattr(parent, attr)
        w_range = linear.weight.detach().abs().amax(0).clamp(min=1e-5)
        x_range = ranges[name].clamp(min=1e-5)
        scale = (x_range**alpha / w_range ** (1.0 - alpha)).clamp(MIN_SCALE, MAX_SCALE)
        setattr(parent, attr, SmoothedLinear(linear, scale))
    return names
