"""spacy-fastbioner: biomedical NER students distilled from transformer teachers
(FastBioNER, Hu et al. 2021) as a spaCy plugin."""
from .about import __version__
from .ml import build_transformer_tagger, first_wordpiece
from .ml.span_getters import configure_sentence_spans
from .pipeline import FastBioNER, make_fastbioner_ner
from .pipeline.sentences import SentenceSplitter, make_fastbioner_sentences
from .sentence_windows import with_sentence_windows

__all__ = [
    "__version__",
    "FastBioNER",
    "SentenceSplitter",
    "build_transformer_tagger",
    "configure_sentence_spans",
    "first_wordpiece",
    "make_fastbioner_ner",
    "make_fastbioner_sentences",
    "with_sentence_windows",
]
