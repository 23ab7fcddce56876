"""Commands added to spaCy's CLI (through the `spacy_cli` entry point): the
`spacy fastbioner ...` group, and `spacy distill` while spaCy has none.

spaCy imports this on every `python -m spacy ...` call: the command modules
import their heavy dependencies (torch models, transformers) inside the
command bodies."""

from . import benchmark, distill, evaluate_raw, make_student, quantize, sentence_windows  # noqa: F401  (register the commands)
from ._util import fastbioner_cli

__all__ = ["fastbioner_cli"]
