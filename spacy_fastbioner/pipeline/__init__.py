"""Pipeline components."""

from .ner import FastBioNER, make_fastbioner_ner

__all__ = ["FastBioNER", "make_fastbioner_ner"]
