"""Registered thinc layers and architectures."""

from .pooling import first_wordpiece
from .tagger import build_transformer_tagger

__all__ = ["first_wordpiece", "build_transformer_tagger"]
