"""spacy-fastbioner: biomedical NER students distilled from transformer teachers
(FastBioNER, Hu et al. 2021) as a spaCy plugin.

Importing the package does not import `transformers`: spaCy loads the plugin's
CLI entry point on every `python -m spacy ...` call. The three names that need
spacy-transformers at import are loaded on first use.
"""

from importlib import import_module
from typing import TYPE_CHECKING, Any, List

from .about import __version__
from .corpora.text import split_sentences
from .distill import create_distill_step, create_dynamic_weights, distill
from .encoder.student import make_student
from .encoder.transformer import count_parameters, find_transformer
from .evaluation.raw import evaluate_raw
from .kb import ConceptKB, build_kb
from .loading import UnsafePipelineError, load_pipeline
from .ml import build_transformer_tagger, first_wordpiece
from .pipeline import FastBioNER, make_fastbioner_ner
from .pipeline.linker import FastBioLinker, make_fastbioner_linker
from .pipeline.sentences import SentenceSplitter, make_fastbioner_sentences
from .util.threads import limit_torch_threads_in_children

if TYPE_CHECKING:
    from .encoder.sentence_windows import with_sentence_windows
    from .ml.span_getters import configure_sentence_spans
    from .runtime.quantize import quantize_pipeline

# Loaded on first use: their modules import spacy-transformers.
_LAZY = {
    "configure_sentence_spans": ".ml.span_getters",
    "quantize_pipeline": ".runtime.quantize",
    "with_sentence_windows": ".encoder.sentence_windows",
}

__all__ = [
    "__version__",
    "ConceptKB",
    "FastBioLinker",
    "FastBioNER",
    "SentenceSplitter",
    "UnsafePipelineError",
    "build_kb",
    "build_transformer_tagger",
    "configure_sentence_spans",
    "count_parameters",
    "create_distill_step",
    "create_dynamic_weights",
    "distill",
    "evaluate_raw",
    "find_transformer",
    "first_wordpiece",
    "limit_torch_threads_in_children",
    "load_pipeline",
    "make_fastbioner_linker",
    "make_fastbioner_ner",
    "make_fastbioner_sentences",
    "make_student",
    "quantize_pipeline",
    "split_sentences",
    "with_sentence_windows",
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(import_module(_LAZY[name], __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> List[str]:
    return sorted(set(globals()) | set(_LAZY))
