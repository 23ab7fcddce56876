"""Commands added to spaCy's CLI (through the `spacy_cli` entry point):
`spacy distill` and the `spacy fastbioner ...` group."""
from ._util import fastbioner_cli
from . import distill, make_student  # noqa: F401  (register the commands)

__all__ = ["fastbioner_cli"]
