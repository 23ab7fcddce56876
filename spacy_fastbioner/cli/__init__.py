"""Commands added to spaCy's CLI (through the `spacy_cli` entry point):
`spacy distill` and the `spacy fastbioner ...` group."""
from ._util import fastbioner_cli
from . import annotate, benchmark, quantize  # noqa: F401  (register the commands)
from . import distill, evaluate_raw, make_student, paper_table, sentence_windows, teacher_targets  # noqa: F401  (register the commands)

__all__ = ["fastbioner_cli"]
