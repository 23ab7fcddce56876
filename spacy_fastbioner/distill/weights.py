"""Dynamic loss weights: functions of training progress (0 to 1) that move the
distillation loss from the teacher's soft targets towards the gold tags."""

import math
from typing import Callable, Dict

from spacy.util import registry

LossWeights = Callable[[float], Dict[str, float]]
SHAPES = ("linear", "cosine", "exponential", "constant")


@registry.misc("spacy_fastbioner.dynamic_weights.v1")
def create_dynamic_weights(
    shape: str = "linear",
    soft_start: float = 1.0,
    soft_end: float = 0.1,
    hidden: float = 0.0,
) -> LossWeights:
    """The loss weights of FastBioNER's dynamic knowledge distillation. The
    soft (teacher) weight falls from `soft_start` at progress 0 to `soft_end`
    at progress 1 along the given shape; the hard (gold) weight is
    1 - soft, so the teacher leads early and the gold tags late. The
    hidden-state weight fades in proportion to the soft weight.

    shape (str): "linear", "cosine" (slow, fast, slow), "exponential"
        (geometric), or "constant" (soft_start throughout; the ablation).
    soft_start (float): The soft weight at progress 0, in [0, 1]. A constant
        shape with soft_start 0 trains on the gold tags alone (no KD).
    soft_end (float): The soft weight at progress 1, in [0, 1].
    hidden (float): The hidden-state loss weight at progress 0 (0 disables it).
    RETURNS (Callable[[float], Dict[str, float]]): progress -> weights with
        the keys "soft", "hard" and "hidden".
    """
    if shape not in SHAPES:
        raise ValueError(f"unknown weight shape {shape!r}: expected one of {SHAPES}")
    for name, value in (("soft_start", soft_start), ("soft_end", soft_end)):
        if not 0.0 <= value <= 1.0:
            raise ValueError(f"{name} must be in [0, 1], got {value}")
    if shape == "exponential" and min(soft_start, soft_end) <= 0.0:
        raise ValueError("the exponential shape needs soft_start and soft_end > 0")
    if hidden < 0.0:
        raise ValueError(f"hidden must be >= 0, got {hidden}")

    def soft_weight(progress: float) -> float:
        p = min(1.0, max(0.0, float(progress)))
        if shape == "constant":
            return soft_start
        if shape == "linear":
            return soft_start + (soft_end - soft_start) * p
        if shape == "cosine":
            return soft_end + (soft_start - soft_end) * (1 + math.cos(math.pi * p)) / 2
        return soft_start * (soft_end / soft_start) ** p

    def weights(progress: float) -> Dict[str, float]:
        soft = soft_weight(progress)
        return {"soft": soft, "hard": 1.0 - soft, "hidden": hidden * soft / soft_start if soft_start else 0.0}

    return weights
