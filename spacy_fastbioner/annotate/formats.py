"""Input formats of `spacy fastbioner annotate`: plain text, JSONL, PubTator,
PubMed XML, BioC XML and BioC JSON, plain or `.gz`.

A reader never raises on bad content: it yields an `InputDocument` for each
document it can read, an `InputError` (file, line or byte offset, id when
known, reason) for each one it cannot, and an `InputSkipped` for a record
that holds no document (PubMed's `<DeleteCitation>`), so that every record of
the input is accounted for. Each record carries its index in the file and the
byte offset (of the decompressed stream) where it starts, so that a shard of a
file can be read again from its first byte (`start_byte`).

Records are cut from the stream by `chunks.py` (and `bioc_json.py`) without
parsing, and parsed one by one: planning (`count_records`) uses the same
cutting without the parsing. A record larger than `max_bytes` (default
DEFAULT_MAX_BYTES, `--max-doc-bytes`) is never held whole: it becomes an error
that states its size.
"""

import gzip
import json
import re
import zlib
from pathlib import Path
from typing import IO, Any, Callable, Dict, Iterator, List, Optional, Sequence, Tuple, Union

from ..corpora.pubtator import HEAD as PUBTATOR_HEAD
from ..corpora.pubtator import PubTatorError, parse_pubtator_block
from . import bioc_input, bioc_json, pubmed_xml
from .bioc_input import read_collection_info, xml_chunks
from .chunks import Chunk, UnreadableInput, split_blocks, split_elements, split_lines
from .records import (
    InputDocument,
    InputError,
    InputSkipped,
    InputSource,
    Passage,
    Record,
    decode,
    open_input,
)

FORMATS = ("text", "jsonl", "pubtator", "pubmed-xml", "bioc-xml", "bioc-json")
XML_FORMATS = {bioc_input.ROOT: "bioc-xml", pubmed_xml.ROOT: "pubmed-xml"}
# The default bound on one document's size: far above a PubMed article
# (a few kB) or a full-text article (under 1 MB), far below what fills memory.
DEFAULT_MAX_BYTES = 16 * 2**20


def detect_format(path: Union[str, Path]) -> str:
    """Guess a file's format from its name (and, for ".txt", its first line;
    for ".xml", its root element): .jsonl/.ndjson -> jsonl, .xml -> pubmed-xml
    (root <PubmedArticleSet>) or bioc-xml (root <collection>), .json ->
    bioc-json, .pubtator -> pubtator; .txt and anything else -> pubtator if
    the first non-blank line is 'PMID|t|...', else text.

    path (Union[str, Path]): The file.
    RETURNS (str): One of FORMATS.
    RAISES (ValueError): For an XML file of another root element.
    """
    name = Path(path).name.lower()
    name = name[:-3] if name.endswith(".gz") else name
    for suffixes, fmt in (
        ((".jsonl", ".ndjson"), "jsonl"),
        ((".xml",), "bioc-xml"),
        ((".json",), "bioc-json"),
        ((".pubtator",), "pubtator"),
    ):
        if name.endswith(suffixes):
            if fmt == "bioc-xml" and Path(path).is_file():
                return xml_format(path)
            return fmt
    try:
        with open_input(path) as file_:
            for raw in file_:
                if raw.strip():
                    line = raw.decode("utf8", errors="replace")
                    return "pubtator" if PUBTATOR_HEAD.match(line.rstrip("\r\n")) else "text"
    except OSError:
        pass
    return "text"


def xml_root(path: Union[str, Path], limit: int = 1 << 16) -> str:
    """The name of an XML file's root element (after its declaration,
    comments and DOCTYPE), read from its first `limit` bytes.

    RAISES (ValueError): If there is no element there.
    """
    with open_input(path) as file_:
        head = file_.read(limit)
    head = re.sub(rb"<\?.*?\?>|<!--.*?-->|<!DOCTYPE[^\[>]*(\[.*?\])?\s*>", b"", head, flags=re.DOTALL)
    found = re.search(rb"<([A-Za-z_][\w.:-]*)", head)
    if found is None:
        raise ValueError(f"{path}: no XML element in its first {limit:,} bytes; expected PubMed or BioC XML")
    return found.group(1).decode("utf8", errors="replace")


def xml_format(path: Union[str, Path]) -> str:
    """pubmed-xml or bioc-xml, by the file's root element.

    RAISES (ValueError): For another root element, which it names.
    """
    root = xml_root(path)
    if root not in XML_FORMATS:
        raise ValueError(
            f"{path}: XML with root element <{root}>, expected <{pubmed_xml.ROOT}> (PubMed/MEDLINE XML) "
            f"or <{bioc_input.ROOT}> (BioC XML)"
        )
    return XML_FORMATS[root]


def _chunks(source: InputSource, file_: IO[bytes], byte: int, line: int, max_bytes: int) -> Iterator[Chunk]:
    """A file's records' bytes, from `byte` (XML: without the header)."""
    if source.format in ("text", "jsonl"):
        return split_lines(file_, byte, line, max_bytes)
    if source.format == "pubtator":
        return split_blocks(file_, byte, line, max_bytes)
    if source.format == "bioc-json":
        return bioc_json.split_documents(file_, byte, max_bytes)
    module: Any = pubmed_xml if source.format == "pubmed-xml" else bioc_input
    chunks = split_elements(file_, byte, module.STARTS, module.ENDS, max_bytes, header=byte == 0)
    if byte == 0:
        next(chunks, None)  # the header (the collection's, read by `read_collection_info`)
    return chunks


# Why the rest of a file cannot be read: a truncated or corrupt .gz, a file
# gone, or a BioC JSON file whose structure is broken.
_READ_ERRORS = (OSError, EOFError, zlib.error, gzip.BadGzipFile, UnreadableInput)


def read_records(
    source: InputSource,
    *,
    start_byte: int = 0,
    start_index: int = 0,
    start_line: int = 1,
    max_bytes: int = DEFAULT_MAX_BYTES,
) -> Iterator[Record]:
    """Read a file's documents, and an error for each one that cannot be read.

    source (InputSource): The file and its format.
    start_byte (int): Start at this byte (the `byte` of an earlier record).
    start_index (int): The index of the record at `start_byte`.
    start_line (int): The line number at `start_byte`.
    max_bytes (int): The largest document read; a larger one is an error.
    YIELDS (Record): Documents, errors and skipped records, in file order. If
        the rest of the file cannot be read, the last is an error at the byte
        where that rest starts: reading from there gives the same error.
    """
    if source.format not in FORMATS:
        raise ValueError(f"unknown input format {source.format!r}: expected one of {', '.join(FORMATS)}")
    index, byte, line = start_index, start_byte, start_line
    try:
        with open_input(source.path) as file_:
            if start_byte:
                file_.seek(start_byte)
            for chunk in _chunks(source, file_, start_byte, start_line, max_bytes):
                record = _parse(source, chunk, index, max_bytes)
                index, byte = index + 1, chunk.byte + chunk.size
                line = chunk.next_line or line
                yield record
    except _READ_ERRORS as err:
        reason = f"cannot read the rest of the file, from byte {byte:,}: {err}"
        yield InputError(source.path, reason, index=index, byte=byte, line=line if _by_line(source) else None)


def _by_line(source: InputSource) -> bool:
    return source.format in ("text", "jsonl", "pubtator")


def _parse(source: InputSource, chunk: Chunk, index: int, max_bytes: int) -> Record:
    where: Dict[str, Any] = {"index": index, "byte": chunk.byte}
    if chunk.line is not None:
        where["line"] = chunk.line
    if chunk.data is None:
        reason = f"document of {chunk.size:,} bytes, over the bound of {max_bytes:,} bytes (--max-doc-bytes)"
        return InputError(source.path, reason, id=_id_in_head(source, chunk), size=chunk.size, **where)
    if source.format == "bioc-json":
        document = bioc_json.parse_document(source.path, chunk, where)
        if isinstance(document, InputError):
            return document
        return bioc_input.bioc_record(source.path, document, where)
    return _PARSERS[source.format](source, chunk, where)


def _id_in_head(source: InputSource, chunk: Chunk) -> Optional[str]:
    """The id of a document over the bound, from its first bytes, where it can be found."""
    if source.format == "text":
        return str(chunk.line)
    if source.format == "pubtator":
        return _pmid_of(chunk.head)
    if source.format == "jsonl":
        key = re.escape(source.id_field.split(".")[-1].encode("utf8"))
        found = re.search(rb'"' + key + rb'"\s*:\s*(?:"((?:[^"\\]|\\.)*)"|(-?\d+))', chunk.head)
        return None if found is None else (found.group(1) or found.group(2)).decode("utf8", errors="replace")
    if source.format == "pubmed-xml":
        return pubmed_xml.pmid_in(chunk.head)
    if source.format == "bioc-json":
        return bioc_json.id_in(chunk.head)
    return bioc_input.id_in(chunk.head)


def _parse_text(source: InputSource, chunk: Chunk, where: Dict[str, Any]) -> Record:
    """One document per line; its id is the line number."""
    assert chunk.data is not None
    text, why = decode(chunk.data)
    if text is not None and chunk.byte == 0:
        text = text.lstrip("\ufeff")
    doc_id = str(chunk.line)
    if text is None or not text.strip():
        return InputError(source.path, why or "empty text", id=doc_id, **where)
    return InputDocument(doc_id, [Passage(0, text)], **where)


def _field(obj: Any, path: str) -> Any:
    for key in path.split("."):
        if not isinstance(obj, dict) or key not in obj:
            return None
        obj = obj[key]
    return obj


def _parse_jsonl(source: InputSource, chunk: Chunk, where: Dict[str, Any]) -> Record:
    """One JSON object per line; the id and text fields are configurable."""
    assert chunk.data is not None
    text, why = decode(chunk.data)
    if text is None:
        return InputError(source.path, why, **where)
    try:
        obj = json.loads(text.lstrip("\ufeff") if chunk.byte == 0 else text)
    except ValueError as err:
        return InputError(source.path, f"broken JSON: {err}; expected one JSON object per line", **where)
    doc_id = _field(obj, source.id_field)
    doc_id = str(chunk.line) if doc_id is None else str(doc_id)
    if not isinstance(obj, dict):
        return InputError(source.path, f"expected a JSON object, found {type(obj).__name__}", id=doc_id, **where)
    values = [_field(obj, name) for name in source.text_fields]
    bad = [name for name, value in zip(source.text_fields, values) if value is not None and not isinstance(value, str)]
    if bad or all(value is None for value in values):
        names = ", ".join(repr(name) for name in (bad or source.text_fields))
        return InputError(source.path, f"expected a string in the text field {names}", id=doc_id, **where)
    text = " ".join(value for value in values if value is not None)
    if not text.strip():
        return InputError(source.path, "empty text", id=doc_id, **where)
    return InputDocument(doc_id, [Passage(0, text)], **where)


def _parse_pubtator(source: InputSource, chunk: Chunk, where: Dict[str, Any]) -> Record:
    """'PMID|t|title', 'PMID|a|abstract' (optional here), then annotation
    lines; a blank line between documents. The block is checked by the
    readers' rules (`corpora/pubtator.py`); a broken one is an error record."""
    assert chunk.data is not None and chunk.line is not None
    path, block, line = source.path, chunk.data.split(b"\n"), chunk.line
    decoded: List[str] = []
    for k, raw in enumerate(block):
        text, why = decode(raw)
        if text is None:
            return InputError(path, f"{why} (line {line + k})", id=_pmid_of(block[0]), **where)
        decoded.append(text.lstrip("\ufeff"))
    try:
        document = parse_pubtator_block(path, decoded, line, require_abstract=False)
    except PubTatorError as err:
        return InputError(path, f"line {err.line}: {err.message}", id=err.pmid, **where)
    if not document.text.strip():
        return InputError(path, "empty text", id=document.pmid, **where)
    # Mentions and relations (e.g. CID) in the order of their lines, as the input holds them.
    annotations: List[Tuple[int, Dict[str, Any]]] = [
        (
            m.line,
            {
                "start": m.start,
                "end": m.end,
                "text": m.text,
                "label": m.label,
                **({"concept": m.concept_id} if m.concept_id else {}),
            },
        )
        for m in document.mentions
    ]
    annotations.extend((k, {"relation": columns}) for k, columns in document.relations)
    return InputDocument(
        document.pmid,
        [Passage(0, document.text)],
        annotations=[annotation for _, annotation in sorted(annotations, key=lambda a: a[0])],
        title=document.title,
        abstract=document.abstract,
        **where,
    )


_PARSERS: Dict[str, Callable[[InputSource, Chunk, Dict[str, Any]], Record]] = {
    "text": _parse_text,
    "jsonl": _parse_jsonl,
    "pubtator": _parse_pubtator,
    "pubmed-xml": lambda source, chunk, where: pubmed_xml.parse_pubmed_chunk(source.path, chunk, where),
    "bioc-xml": lambda source, chunk, where: bioc_input.parse_bioc_xml_chunk(source.path, chunk, where),
}


def _pmid_of(raw: bytes) -> Optional[str]:
    head = re.match(rb"^([^\t|]+)[|\t]", raw)
    return head.group(1).decode("utf8", errors="replace") if head else None


def count_records(
    source: InputSource, every: int, max_bytes: int = DEFAULT_MAX_BYTES
) -> Tuple[int, List[Tuple[int, int, int]]]:
    """Count a file's records without parsing them, noting where every
    `every`-th one starts: one pass of the same cutting as `read_records`.

    source (InputSource): The file.
    every (int): The shard size.
    max_bytes (int): The largest document read (as for `read_records`).
    RETURNS (Tuple[int, List[Tuple[int, int, int]]]): The number of records
        and, for records 0, every, 2*every, ..., their (index, byte offset,
        line), the arguments of `read_records` that start there.
    """
    n, byte, line = 0, 0, 1
    starts: List[Tuple[int, int, int]] = []
    try:
        with open_input(source.path) as file_:
            for chunk in _chunks(source, file_, 0, 1, max_bytes):
                if n % every == 0:
                    starts.append((n, chunk.byte, chunk.line or 1))
                n, byte, line = n + 1, chunk.byte + chunk.size, chunk.next_line or line
    except _READ_ERRORS:  # the rest of the file is one error record, which starts where it stops
        if n % every == 0:
            starts.append((n, byte, line))
        n += 1
    return n, starts


def passages_of(documents: Sequence[InputDocument]) -> List[Tuple[int, Passage]]:
    """(document position, passage) of every passage with text."""
    return [(i, p) for i, doc in enumerate(documents) for p in doc.passages if p.text]


__all__ = [
    "DEFAULT_MAX_BYTES",
    "FORMATS",
    "InputDocument",
    "InputError",
    "InputSkipped",
    "InputSource",
    "Passage",
    "Record",
    "count_records",
    "detect_format",
    "read_collection_info",
    "read_records",
    "xml_chunks",
    "xml_format",
    "xml_root",
]
