"""The knowledge base of the linker: concept names from PubTator gold annotations, MeSH and
CTD, normalised, searchable by exact match and character 3-gram TF-IDF, saved without pickle."""

from .build import build_kb
from .lookup import Candidate, ConceptKB
from .names import match_key, normalize, split_identifiers
from .serialize import KBFormatError
from .sources import KBSourceError, NameRecord

__all__ = [
    "Candidate",
    "ConceptKB",
    "KBFormatError",
    "KBSourceError",
    "NameRecord",
    "build_kb",
    "match_key",
    "normalize",
    "split_identifiers",
]
