"""spacy-fastbioner: biomedical NER students distilled from transformer teachers
(FastBioNER, Hu et al. 2021) as a spaCy plugin."""
from .about import __version__
from .ml import build_transformer_tagger, first_wordpiece
from .pipeline import FastBioNER, make_fastbioner_ner

__all__ = [
    "__version__",
    "FastBioNER",
    "build_transformer_tagger",
    "first_wordpiece",
    "make_fastbioner_ner",
]
