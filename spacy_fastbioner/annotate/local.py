"""Annotating shards on one machine with `nlp.pipe`, in one process or in
spaCy's `n_process` child processes; the shard work here is also what each
Ray actor does (`ray.py`).

A shard's passages go through `nlp.pipe` sorted by length, so that each batch
holds texts of similar length (less padding in the transformer), and come back
to input order afterwards. Batches never span two shards, so a shard's output
does not depend on which shards ran before it (a resumed run or the Ray
backend gives the same output).
"""

from dataclasses import dataclass, field
from itertools import islice
from typing import Any, Callable, Dict, Iterator, List, Optional, Sequence, Set, Tuple

from spacy.language import Language
from spacy.tokens import Doc

from .confidence import Entity, add_entity_confidence, doc_entities, has_linker
from .formats import (
    DEFAULT_MAX_BYTES,
    InputDocument,
    InputError,
    InputSkipped,
    InputSource,
    Passage,
    Record,
    passages_of,
    read_records,
)
from .ids import unsafe_id_reason
from .isolated import run_in_child
from .progress import OnDoc
from .shards import Shard
from .writers import render, render_html


@dataclass
class ShardSettings:
    """What shapes a shard's output (the same for every shard of a run)."""

    formats: Tuple[str, ...] = ("jsonl",)
    min_confidence: float = 0.0
    batch_size: int = 64
    # The transformer's max_batch_items (padded wordpieces per forward pass);
    # None keeps the pipeline's own.
    max_batch_items: Optional[int] = None
    # The largest document read, in bytes; a larger one goes to errors.jsonl.
    max_doc_bytes: int = DEFAULT_MAX_BYTES
    # Add (True) or remove (False) the fastbioner_abbreviations component; None keeps the pipeline's.
    abbreviations: Optional[bool] = None


@dataclass
class ShardResult:
    """A processed shard: rendered outputs, errors.jsonl records, counts and displaCy pages."""

    outputs: Dict[str, str]
    errors: List[Dict[str, Any]]
    counts: Dict[str, int]
    pages: List[Tuple[str, str]] = field(default_factory=list)  # (document id, HTML)
    deleted: List[str] = field(default_factory=list)  # PMIDs of PubMed's DeleteCitation records


def load_pipeline(
    model: str,
    max_batch_items: Optional[int] = None,
    max_doc_bytes: int = DEFAULT_MAX_BYTES,
    abbreviations: Optional[bool] = None,
) -> Language:
    """Load a pipeline for annotation: entity confidence on, the length limit
    that of the documents read, and the transformer's output dropped from each
    doc once the NER has used it (it is large, and `n_process` would send it
    back to the parent).

    model (str): A pipeline folder or an installed package name.
    max_batch_items (Optional[int]): Set the transformer's `max_batch_items`
        (padded wordpieces per forward pass; `transformer.set_max_batch_items`);
        None keeps the pipeline's.
    max_doc_bytes (int): The run's bound on a document's size: no document
        read is longer in characters, so none meets spaCy's own limit.
    abbreviations (Optional[bool]): Add or remove the `fastbioner_abbreviations`
        component (document-level consistency); None keeps the pipeline's.
    RETURNS (Language): The pipeline.
    """
    from ..encoder.transformer import set_max_batch_items
    from ..loading import load_pipeline as load_safely
    from ..pipeline.abbreviations import use_abbreviations

    nlp = load_safely(model)
    # The BioTokenizer and the sentence-windowed transformer are linear in the
    # text's length; spaCy's default of 1,000,000 characters is there for its
    # parser's and NER's memory. The bound is the reader's (`max_doc_bytes`).
    nlp.max_length = max(nlp.max_length, max_doc_bytes)
    if max_batch_items is not None:
        set_max_batch_items(nlp, max_batch_items)
    add_entity_confidence(nlp)
    if abbreviations is not None:
        use_abbreviations(nlp, abbreviations)
    attrs: Dict[str, Any] = {"tensor": None}
    if Doc.has_extension("trf_data"):
        attrs["_.trf_data"] = None
    nlp.add_pipe("doc_cleaner", name="fastbioner_doc_cleaner", config={"attrs": attrs, "silent": True})
    return nlp


def annotate_documents(
    nlp: Language,
    documents: Sequence[InputDocument],
    *,
    batch_size: int = 64,
    n_process: int = 1,
    min_confidence: float = 0.0,
    on_doc: Optional[OnDoc] = None,
) -> Tuple[List[List[Entity]], int, Dict[int, str]]:
    """Annotate documents passage by passage, in length-sorted batches. If the
    pipeline raises (e.g. a text that its transformer cannot take), the
    documents are annotated again one at a time, and those that fail are
    returned as failures instead of stopping the run.

    nlp (Language): The pipeline (from `load_pipeline`).
    documents (Sequence[InputDocument]): The documents.
    batch_size (int): Passages per batch of `nlp.pipe`.
    n_process (int): Processes of `nlp.pipe`.
    min_confidence (float): Drop entities whose confidence is lower (entities
        without a confidence are kept).
    on_doc (Optional[OnDoc]): Called with (1, words) as each document is done.
    RETURNS (Tuple[List[List[Entity]], int, Dict[int, str]]): Each document's
        entities (document offsets, in order), the number of tokens annotated,
        and the documents that the pipeline failed on, with the reason.
    """
    units = passages_of(documents)
    order = sorted(range(len(units)), key=lambda i: len(units[i][1].text))
    texts = [units[i][1].text for i in order]
    reported: Set[int] = set()
    docs: List[Optional[Doc]]
    try:
        docs = list(_annotate_units(nlp, texts, batch_size, n_process, order, units, on_doc, reported))
        failures: Dict[int, str] = {}
    except Exception:  # any component's error: find the documents that cause it
        docs, failures = _annotate_one_by_one(nlp, texts, order, units)
        if on_doc is not None:
            for doc_index in sorted(set(range(len(documents))) - reported):
                on_doc(1, sum(len(d) for i, d in zip(order, docs) if d is not None and units[i][0] == doc_index))
    entities: List[List[Entity]] = [[] for _ in documents]
    words = 0
    linked = has_linker(nlp)
    for i, doc in zip(order, docs):
        doc_index, passage = units[i]
        if doc is None or doc_index in failures:
            continue
        entities[doc_index].extend(
            ent
            for ent in doc_entities(doc, passage.offset, linked)
            if ent.confidence is None or ent.confidence >= min_confidence
        )
        words += len(doc)
    return [sorted(ents, key=lambda e: (e.start, e.end, e.label)) for ents in entities], words, failures


def _annotate_units(
    nlp: Language,
    texts: List[str],
    batch_size: int,
    n_process: int,
    order: List[int],
    units: List[Tuple[int, Passage]],
    on_doc: Optional[OnDoc],
    reported: Set[int],
) -> Iterator[Doc]:
    remaining: Dict[int, int] = {}
    for doc_index, _ in units:
        remaining[doc_index] = remaining.get(doc_index, 0) + 1
    words: Dict[int, int] = {}
    for i, doc in zip(order, nlp.pipe(texts, batch_size=batch_size, n_process=n_process)):
        doc_index = units[i][0]
        words[doc_index] = words.get(doc_index, 0) + len(doc)
        remaining[doc_index] -= 1
        if on_doc is not None and remaining[doc_index] == 0:
            on_doc(1, words[doc_index])
            reported.add(doc_index)
        yield doc


def _annotate_one_by_one(
    nlp: Language, texts: List[str], order: List[int], units: List[Tuple[int, Passage]]
) -> Tuple[List[Optional[Doc]], Dict[int, str]]:
    docs: List[Optional[Doc]] = []
    failures: Dict[int, str] = {}
    for i, text in zip(order, texts):
        try:
            docs.append(nlp(text))
        except Exception as err:  # whatever the pipeline raises, the run goes on
            docs.append(None)
            failures.setdefault(
                units[i][0], f"the pipeline failed on this document: {type(err).__name__}: {str(err)[:300]}"
            )
    return docs, failures


def read_shard(source: InputSource, shard: Shard, max_doc_bytes: int = DEFAULT_MAX_BYTES) -> List[Record]:
    """The records of a shard, read from its first byte (for a .gz, the
    bytes before it are decompressed again: `ShardReader` reads consecutive
    shards without that)."""
    records = read_records(
        source, start_byte=shard.byte, start_index=shard.start, start_line=shard.line, max_bytes=max_doc_bytes
    )
    return list(islice(records, shard.end - shard.start))


class ShardReader:
    """Reads shards, keeping an input open between consecutive shards of it,
    so that a run reads each input once, in one pass: a .gz input is
    decompressed once, not again up to each shard's start. A shard that does
    not follow the last one read (e.g. after finished shards on resume)
    reopens its input at its first byte.

    sources (Sequence[InputSource]): The inputs, by `shard.input`.
    max_doc_bytes (int): The bound on a document's size.
    """

    def __init__(self, sources: Sequence[InputSource], max_doc_bytes: int = DEFAULT_MAX_BYTES) -> None:
        self.sources, self.max_doc_bytes = sources, max_doc_bytes
        self._open: Optional[Tuple[int, int, Iterator[Record]]] = None  # (input, next index, records)

    def read(self, shard: Shard) -> List[Record]:
        """The records of a shard."""
        if self._open is None or self._open[:2] != (shard.input, shard.start):
            self.close()
            source = self.sources[shard.input]
            records = read_records(
                source,
                start_byte=shard.byte,
                start_index=shard.start,
                start_line=shard.line,
                max_bytes=self.max_doc_bytes,
            )
            self._open = (shard.input, shard.start, records)
        records = self._open[2]
        read = list(islice(records, shard.end - shard.start))
        self._open = (shard.input, shard.end, records)
        return read

    def close(self) -> None:
        """Close the open input."""
        if self._open is not None:
            getattr(self._open[2], "close", lambda: None)()
            self._open = None


def process_shard(
    nlp: Language,
    records: Sequence[Record],
    settings: ShardSettings,
    *,
    shard_id: str,
    collection: Any = None,
    n_process: int = 1,
    n_pages: int = 0,
    on_doc: Optional[OnDoc] = None,
) -> ShardResult:
    """Annotate a shard's documents and render its outputs.

    nlp (Language): The pipeline (from `load_pipeline`).
    records (Sequence[Record]): The shard's documents and errors.
    settings (ShardSettings): Output formats, confidence threshold, batch size.
    shard_id (str): The shard's id, written into its error records.
    collection (Any): The input's BioC collection info, for BioC output.
    n_process (int): Processes of `nlp.pipe`.
    n_pages (int): Render displaCy pages of this many of its first documents.
    on_doc (Optional[OnDoc]): Progress callback, per document; errors are
        reported through it too, with 0 words.
    RETURNS (ShardResult): The shard's outputs.
    """
    refused = {
        r.index: InputError(r.file, why, index=r.index, line=r.line, byte=r.byte, id=r.id)
        for r in records
        if isinstance(r, InputDocument) and (why := unsafe_id_reason(r.id, settings.formats))
    }
    records = [refused.get(r.index, r) if isinstance(r, InputDocument) else r for r in records]
    documents = [r for r in records if isinstance(r, InputDocument)]
    skipped = [r for r in records if isinstance(r, InputSkipped)]
    n_not_annotated = len(records) - len(documents)
    if on_doc is not None and n_not_annotated:
        on_doc(n_not_annotated, 0)
    entities, n_words, failures = annotate_documents(
        nlp,
        documents,
        batch_size=settings.batch_size,
        n_process=n_process,
        min_confidence=settings.min_confidence,
        on_doc=on_doc,
    )
    failed = [
        InputError(doc.file, failures[i], index=doc.index, line=doc.line, byte=doc.byte, id=doc.id)
        for i, doc in enumerate(documents)
        if i in failures
    ]
    bad = sorted([r for r in records if isinstance(r, InputError)] + failed, key=lambda r: r.index)
    errors = [{**r.to_dict(), "shard": shard_id} for r in bad]
    annotated = [(doc, ents) for i, (doc, ents) in enumerate(zip(documents, entities)) if i not in failures]
    outputs = {fmt: render(fmt, annotated, collection) for fmt in settings.formats}
    counts = {
        "n_written": len(annotated),
        "n_errors": len(errors),
        "n_skipped": len(skipped),
        "n_entities": sum(len(e) for _, e in annotated),
        "n_words": n_words,
    }
    pages = [(doc.id, render_html(doc, ents)) for doc, ents in annotated[:n_pages]]
    deleted = [pmid for r in skipped for pmid in r.deleted]
    return ShardResult(outputs, errors, counts, pages, deleted)


def run_local(
    nlp: Language,
    shards: Sequence[Shard],
    sources: Sequence[InputSource],
    collections: Sequence[Any],
    settings: ShardSettings,
    *,
    n_process: int,
    pages_for: Callable[[Shard], int],
    on_result: Callable[[Shard, ShardResult], None],
    on_doc: Optional[OnDoc] = None,
    isolate: bool = False,
) -> None:
    """Process shards one after the other, each with `nlp.pipe(n_process=N)`,
    or with one process forked per shard (`isolated.py`).

    nlp (Language): The pipeline (from `load_pipeline`).
    shards (Sequence[Shard]): The shards to do, in order.
    sources (Sequence[InputSource]): The inputs, by `shard.input`.
    collections (Sequence[Any]): The BioC collection info of each input (or None).
    settings (ShardSettings): The run's output settings.
    n_process (int): Processes of `nlp.pipe`.
    pages_for (Callable[[Shard], int]): How many displaCy pages a shard renders.
    on_result (Callable[[Shard, ShardResult], None]): Called with each finished shard.
    on_doc (Optional[OnDoc]): Progress callback.
    isolate (bool): Annotate each shard in a child process forked for it
        (n_process must be 1), so that this process's memory stays flat.
    """
    from .workers import guard_workers

    reader = ShardReader(sources, settings.max_doc_bytes)
    try:
        with guard_workers(nlp):
            for shard in shards:
                args = (nlp, reader.read(shard), settings)
                kwargs: Dict[str, Any] = {
                    "shard_id": shard.id,
                    "collection": collections[shard.input],
                    "n_process": n_process,
                    "n_pages": pages_for(shard),
                }
                if isolate:
                    result = run_in_child(process_shard, *args, on_doc=on_doc, **kwargs)
                else:
                    result = process_shard(*args, on_doc=on_doc, **kwargs)
                on_result(shard, result)
    finally:
        reader.close()


__all__ = [
    "InputError",
    "ShardReader",
    "ShardResult",
    "ShardSettings",
    "annotate_documents",
    "load_pipeline",
    "process_shard",
    "read_shard",
    "run_local",
]
