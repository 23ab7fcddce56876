"""Dynamic knowledge distillation: weights, losses, the step and the loop."""

from .loop import distill
from .step import create_distill_step
from .weights import create_dynamic_weights

__all__ = ["create_distill_step", "create_dynamic_weights", "distill"]
