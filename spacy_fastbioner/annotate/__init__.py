"""Annotating collections: `annotate()` and `spacy fastbioner annotate`.

formats.py reads the inputs (records.py: what it yields; chunks.py: cutting a
stream into records, linear and bounded; pubmed_xml.py: PubMed/MEDLINE XML;
bioc_input.py and bioc_json.py: BioC XML and JSON), writers.py renders the
outputs, ids.py refuses ids that they cannot hold, confidence.py reads each
entity's confidence, shards.py keeps the sharded output and its manifest,
lock.py keeps a second run out of an output folder, local.py runs `nlp.pipe`
(one or more processes), workers.py ends its workers with it, ray.py runs the
same shards on Ray (optional extra `[ray]`), threads.py sets threads and fork
behaviour.
"""

from .confidence import add_entity_confidence, entity_confidence
from .formats import (
    FORMATS,
    InputDocument,
    InputError,
    InputSkipped,
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
    "InputSkipped",
    "InputSource",
    "OUTPUT_FORMATS",
    "add_entity_confidence",
    "annotate",
    "detect_format",
    "entity_confidence",
    "read_records",
]
