"""Commands added to spaCy's CLI (through the `spacy_cli` entry point): the
`spacy fastbioner ...` group, and `spacy distill` while spaCy has none.

spaCy imports this on every `python -m spacy ...` call: the command modules
import their heavy dependencies (torch models, transformers) inside the
command bodies."""

from . import (  # noqa: F401  (register the commands)
    adapt_encoder,
    annotate,
    benchmark,
    build_kb,
    distill,
    evaluate_linking,
    evaluate_raw,
    export,
    make_student,
    quantize,
    sentence_windows,
    teacher_targets,
    train,
)
from ._util import fastbioner_cli

__all__ = ["fastbioner_cli"]
