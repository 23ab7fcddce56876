"""Commands added to spaCy's CLI (through the `spacy_cli` entry point):
`spacy distill` and the `spacy fastbioner ...` group."""
from ._util import fastbioner_cli
from . import benchmark, export, quantize  # noqa: F401  (register the commands)
from . import distill, evaluate_raw, make_student, sentence_windows  # noqa: F401  (register the commands)

__all__ = ["fastbioner_cli"]
