"""Annotating collections: `annotate()` and `spacy fastbioner annotate`.

formats.py reads the inputs (records.py: what it yields; bioc_input.py: BioC
XML and JSON), writers.py renders the outputs, confidence.py gives each entity
its confidence, shards.py keeps the sharded output and its manifest, local.py
runs `nlp.pipe` (one or more processes), ray.py runs the same shards on Ray
(optional extra `[ray]`), threads.py sets threads and fork behaviour.
"""

from .confidence import add_entity_confidence, entity_confidence
from .formats import (
    FORMATS,
    InputDocument,
    InputError,
    InputSource,
    detect_format,
    read_records,
)
from .job import AnnotateError, annotate
from .writers import OUTPUT_FORMATS

__all__ = [
    "AnnotateError",
    "FORMATS",
    "InputDocument",
    "InputError",
    "InputSource",
    "OUTPUT_FORMATS",
    "add_entity_confidence",
    "annotate",
    "detect_format",
    "entity_confidence",
    "read_records",
]
