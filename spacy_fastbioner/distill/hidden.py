"""The intermediate-layer (PKD) loss: MSE between each student layer's hidden
states and those of its mapped teacher layer.

spacy-transformers backpropagates through `last_hidden_state` only, so this
loss is computed in PyTorch on the Hugging Face models themselves: forward
hooks capture the layer outputs (and the attention mask) during the ordinary
spaCy forward passes, and the loss is backpropagated into the student's
parameter gradients before spaCy's backward pass adds its own.
"""

from contextlib import contextmanager
from typing import Dict, Iterator, List, Sequence, cast

import torch


class LayerCapture:
    """Collect the outputs of chosen encoder layers of a BERT-like model, and
    the attention mask of its forward call."""

    def __init__(self) -> None:
        self.layers: Dict[int, torch.Tensor] = {}
        self.attention_mask: List[torch.Tensor] = []

    def clear(self) -> None:
        self.layers.clear()
        self.attention_mask.clear()


@contextmanager
def capture_layers(hf_model: torch.nn.Module, layers: Sequence[int]) -> Iterator[LayerCapture]:
    """Capture the hidden states of `layers` while the context is open."""
    capture = LayerCapture()
    handles = []

    def mask_hook(module, args, kwargs):
        mask = kwargs.get("attention_mask")
        if mask is not None:
            capture.attention_mask.append(mask)

    handles.append(hf_model.register_forward_pre_hook(mask_hook, with_kwargs=True))
    # torch types submodule attributes as `Tensor | Module`; a BERT-like
    # model's `encoder.layer` is a ModuleList.
    encoder_layers = cast(torch.nn.ModuleList, cast(torch.nn.Module, hf_model.encoder).layer)
    for i in layers:

        def layer_hook(module, args, output, i=i):
            capture.layers[i] = output[0] if isinstance(output, tuple) else output

        handles.append(encoder_layers[i].register_forward_hook(layer_hook))
    try:
        yield capture
    finally:
        for handle in handles:
            handle.remove()


def hidden_state_loss(student: LayerCapture, teacher: LayerCapture, layer_map: Sequence[int]) -> torch.Tensor:
    """Mean squared error between student layer i and teacher layer
    layer_map[i], over the real (unpadded) wordpieces, averaged over layers.
    """
    if not student.attention_mask or not teacher.attention_mask:
        raise ValueError("the hidden-state loss needs one forward pass of each model")
    mask = student.attention_mask[-1].to(torch.bool)
    losses = []
    for i, j in enumerate(layer_map):
        h_student = student.layers[i]
        h_teacher = teacher.layers[j].detach()
        if h_student.shape != h_teacher.shape:
            raise ValueError(
                f"student layer {i} has hidden states of shape {tuple(h_student.shape)}, "
                f"teacher layer {j} of {tuple(h_teacher.shape)}: the hidden-state loss "
                "needs the same wordpiece batches (tokenizer and span getter) on both"
            )
        diff = (h_student - h_teacher)[mask]
        losses.append((diff**2).mean())
    return torch.stack(losses).mean()
