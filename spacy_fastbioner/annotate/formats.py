"""Input formats of `spacy fastbioner annotate`: plain text, JSONL, PubTator,
BioC XML and BioC JSON, plain or `.gz`.

A reader never raises on bad content: it yields an `InputDocument` for each
document it can read and an `InputError` (file, line or byte offset, id when
known, reason) for each one it cannot, so that every document of the input is
accounted for. Each record carries its index in the file and the byte offset
(of the decompressed stream) where it starts, so that a shard of a file can be
read again from its first byte (`start_byte`).
"""
import gzip
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Callable, Dict, Iterator, List, Optional, Sequence, Tuple, Union, cast

FORMATS = ("text", "jsonl", "pubtator", "bioc-xml", "bioc-json")
_PUBTATOR_HEAD = re.compile(r"^([^\t|]*)\|([ta])\|(.*)$", re.DOTALL)
_XML_DOC_START = re.compile(rb"<document[\s>]")
_XML_DOC_END = b"</document>"
_XML_ID = re.compile(rb"<id>\s*([^<]*?)\s*</id>")
_BIOC_SHELL = "<collection><source></source><date></date><key></key>{}</collection>"


@dataclass
class Passage:
    """A piece of a document's text, `offset` characters into the document."""

    offset: int
    text: str


@dataclass
class InputDocument:
    """A document to annotate.

    id (str): The document's id (from the input, else its line or index).
    passages (List[Passage]): The texts to annotate; entity offsets are
        `passage.offset` + the offset in the passage text.
    index (int): The record's 0-based position in its file.
    line (Optional[int]): Its 1-based line, for line-based formats.
    byte (int): The byte offset where it starts.
    annotations (List[Dict[str, Any]]): Annotations already in the input, kept
        apart from the predicted ones.
    title (Optional[str]): PubTator: the title (the text is title + " " + abstract).
    abstract (Optional[str]): PubTator: the abstract, None when the input had no `|a|` line.
    bioc (Any): BioC: the `bioc.BioCDocument`, written back with the predictions.
    file (str): The input file.
    """

    id: str
    passages: List[Passage]
    index: int = 0
    line: Optional[int] = None
    byte: int = 0
    annotations: List[Dict[str, Any]] = field(default_factory=list)
    title: Optional[str] = None
    abstract: Optional[str] = None
    bioc: Any = None
    file: str = ""

    @property
    def text(self) -> str:
        """The document's text, passages placed at their offsets (gaps as spaces)."""
        parts: List[str] = []
        end = 0
        for passage in sorted(self.passages, key=lambda p: p.offset):
            if passage.offset > end:
                parts.append(" " * (passage.offset - end))
            parts.append(passage.text[max(0, end - passage.offset):])
            end = max(end, passage.offset + len(passage.text))
        return "".join(parts)


@dataclass
class InputError:
    """A document of the input that cannot be annotated, and why."""

    file: str
    reason: str
    index: int = 0
    line: Optional[int] = None
    byte: int = 0
    id: Optional[str] = None

    def to_dict(self) -> Dict[str, Any]:
        """RETURNS (Dict[str, Any]): The errors.jsonl record."""
        return {"file": self.file, "line": self.line, "byte": self.byte, "id": self.id, "reason": self.reason}


Record = Union[InputDocument, InputError]


@dataclass(frozen=True)
class InputSource:
    """An input file and how to read it.

    path (str): The file (".gz" is decompressed).
    format (str): One of FORMATS.
    id_field (str): JSONL: the id field (dotted for nested objects).
    text_fields (Tuple[str, ...]): JSONL: the text field(s); several are
        joined with a space, like PubTator's title and abstract.
    """

    path: str
    format: str
    id_field: str = "id"
    text_fields: Tuple[str, ...] = ("text",)


def detect_format(path: Union[str, Path]) -> str:
    """Guess a file's format from its name (and, for ".txt", its first line):
    .jsonl/.ndjson -> jsonl, .xml -> bioc-xml, .json -> bioc-json,
    .pubtator -> pubtator; .txt and anything else -> pubtator if the first
    non-blank line is 'PMID|t|...', else text.

    path (Union[str, Path]): The file.
    RETURNS (str): One of FORMATS.
    """
    name = Path(path).name.lower()
    name = name[:-3] if name.endswith(".gz") else name
    for suffixes, fmt in (((".jsonl", ".ndjson"), "jsonl"), ((".xml",), "bioc-xml"),
                          ((".json",), "bioc-json"), ((".pubtator",), "pubtator")):
        if name.endswith(suffixes):
            return fmt
    try:
        with _open(path) as file_:
            for raw in file_:
                if raw.strip():
                    line = raw.decode("utf8", errors="replace")
                    return "pubtator" if _PUBTATOR_HEAD.match(line.rstrip("\r\n")) else "text"
    except OSError:
        pass
    return "text"


def read_records(
    source: InputSource, *, start_byte: int = 0, start_index: int = 0, start_line: int = 1
) -> Iterator[Record]:
    """Read a file's documents, and an error for each one that cannot be read.

    source (InputSource): The file and its format.
    start_byte (int): Start at this byte (the `byte` of an earlier record;
        ignored for BioC JSON, which is read whole).
    start_index (int): The index of the record at `start_byte`.
    start_line (int): The line number at `start_byte`.
    YIELDS (Record): Documents and errors, in file order.
    """
    readers: Dict[str, Callable[[InputSource, IO[bytes], int, int, int], Iterator[Record]]] = {
        "text": _read_text, "jsonl": _read_jsonl, "pubtator": _read_pubtator, "bioc-xml": _read_bioc_xml,
    }
    if source.format not in FORMATS:
        raise ValueError(f"unknown input format {source.format!r}: expected one of {', '.join(FORMATS)}")
    if source.format == "bioc-json":
        for record in _read_bioc_json(source, start_index):
            record.file = source.path
            yield record
        return
    index = start_index
    try:
        with _open(source.path) as file_:
            if start_byte:
                file_.seek(start_byte)
            for record in readers[source.format](source, file_, start_byte, start_index, start_line):
                index = record.index + 1
                record.file = source.path
                yield record
    except (OSError, EOFError, gzip.BadGzipFile) as err:
        # A truncated or corrupt .gz (or a file gone): what was read is kept, the rest is one error.
        yield InputError(source.path, f"cannot read the rest of the file: {err}", index=index)


def _open(path: Union[str, Path]) -> IO[bytes]:
    if str(path).endswith(".gz"):
        return cast(IO[bytes], gzip.open(path, "rb"))
    return open(path, "rb")


def _lines(file_: IO[bytes], byte: int) -> Iterator[Tuple[int, bytes]]:
    """(byte offset, line without its line break)."""
    for raw in file_:
        yield byte, raw.rstrip(b"\r\n")
        byte += len(raw)


def _decode(raw: bytes, what: str = "line") -> Tuple[Optional[str], str]:
    """(text, "") or (None, reason) for bytes that are not UTF-8."""
    try:
        return raw.decode("utf8"), ""
    except UnicodeDecodeError as err:
        return None, f"bytes that are not UTF-8 ({raw[err.start]:#04x} at byte {err.start} of the {what})"


def _read_text(source: InputSource, file_: IO[bytes], byte: int, index: int, _: int) -> Iterator[Record]:
    """One document per line; its id is the line number."""
    for index, (offset, raw) in enumerate(_lines(file_, byte), index):
        line = index + 1
        text, why = _decode(raw)
        if text is not None and index == 0:
            text = text.lstrip("\ufeff")
        if text is None or not text.strip():
            yield InputError(source.path, why or "empty text", index=index, line=line, byte=offset, id=str(line))
        else:
            yield InputDocument(str(line), [Passage(0, text)], index=index, line=line, byte=offset)


def _field(obj: Any, path: str) -> Any:
    for key in path.split("."):
        if not isinstance(obj, dict) or key not in obj:
            return None
        obj = obj[key]
    return obj


def _read_jsonl(source: InputSource, file_: IO[bytes], byte: int, index: int, _: int) -> Iterator[Record]:
    """One JSON object per line; the id and text fields are configurable."""
    for index, (offset, raw) in enumerate(_lines(file_, byte), index):
        line = index + 1
        where: Dict[str, Any] = {"index": index, "line": line, "byte": offset}
        text, why = _decode(raw)
        if text is None:
            yield InputError(source.path, why, **where)
            continue
        try:
            obj = json.loads(text.lstrip("\ufeff") if index == 0 else text)
        except ValueError as err:
            yield InputError(source.path, f"broken JSON: {err}; expected one JSON object per line", **where)
            continue
        doc_id = _field(obj, source.id_field)
        doc_id = str(line) if doc_id is None else str(doc_id)
        if not isinstance(obj, dict):
            yield InputError(source.path, f"expected a JSON object, found {type(obj).__name__}", id=doc_id, **where)
            continue
        values = [_field(obj, name) for name in source.text_fields]
        bad = [name for name, value in zip(source.text_fields, values) if value is not None
               and not isinstance(value, str)]
        if bad or all(value is None for value in values):
            names = ", ".join(repr(name) for name in (bad or source.text_fields))
            yield InputError(source.path, f"expected a string in the text field {names}", id=doc_id, **where)
            continue
        text = " ".join(value for value in values if value is not None)
        if not text.strip():
            yield InputError(source.path, "empty text", id=doc_id, **where)
            continue
        yield InputDocument(doc_id, [Passage(0, text)], **where)


def _pubtator_blocks(file_: IO[bytes], byte: int) -> Iterator[Tuple[int, int, List[bytes]]]:
    """(byte offset, first line number relative to the start, lines) of each
    blank-line-separated block."""
    block: List[bytes] = []
    start = first = 0
    for i, (offset, raw) in enumerate(_lines(file_, byte)):
        if raw.strip():
            if not block:
                start, first = offset, i
            block.append(raw)
        elif block:
            yield start, first, block
            block = []
    if block:
        yield start, first, block


def _read_pubtator(source: InputSource, file_: IO[bytes], byte: int, index: int, line: int) -> Iterator[Record]:
    """'PMID|t|title', 'PMID|a|abstract', then annotation lines; a blank line
    between documents."""
    for index, (offset, first, block) in enumerate(_pubtator_blocks(file_, byte), index):
        yield _parse_pubtator_block(source.path, block, index, line + first, offset)


def _parse_pubtator_block(path: str, block: List[bytes], index: int, line: int, offset: int) -> Record:
    where: Dict[str, Any] = {"index": index, "line": line, "byte": offset}
    decoded: List[str] = []
    for k, raw in enumerate(block):
        text, why = _decode(raw)
        if text is None:
            return InputError(path, f"{why} (line {line + k})", id=_pmid_of(block[0]), **where)
        decoded.append(text.lstrip("\ufeff"))
    head = _PUBTATOR_HEAD.match(decoded[0])
    if not head or head.group(2) != "t":
        return InputError(path, f"expected 'PMID|t|title', found {decoded[0][:60]!r}", **where)
    pmid, title = head.group(1), head.group(3)
    rest = decoded[1:]
    abstract: Optional[str] = None
    second = _PUBTATOR_HEAD.match(rest[0]) if rest else None
    if second and second.group(2) == "a":
        if second.group(1) != pmid:
            return InputError(path, f"'|a|' line of PMID {second.group(1)!r} after the title of {pmid!r}",
                              id=pmid, **where)
        abstract, rest = second.group(3), rest[1:]
    text = title if abstract is None else f"{title} {abstract}"
    if not text.strip():
        return InputError(path, "empty text", id=pmid, **where)
    annotations: List[Dict[str, Any]] = []
    for k, ann_line in enumerate(rest, len(decoded) - len(rest)):
        at = f"line {line + k}"
        cols = ann_line.split("\t")
        if len(cols) < 3 or cols[0] != pmid:
            return InputError(path, f"{at}: expected 'PMID<TAB>start<TAB>end<TAB>mention<TAB>type' or a relation "
                              f"of {pmid}, found {ann_line[:60]!r}", id=pmid, **where)
        if not (cols[1].isascii() and cols[1].isdigit()):
            annotations.append({"relation": cols[1:]})  # e.g. 'PMID<TAB>CID<TAB>...'
            continue
        if len(cols) < 5 or not (cols[2].isascii() and cols[2].isdigit()):
            return InputError(path, f"{at}: expected 'PMID<TAB>start<TAB>end<TAB>mention<TAB>type', found "
                              f"{ann_line[:60]!r}", id=pmid, **where)
        start, end = int(cols[1]), int(cols[2])
        if not 0 <= start < end <= len(text):
            return InputError(path, f"{at}: offsets {start}-{end} outside the text of {pmid} ({len(text)} "
                              "characters); expected offsets into title + ' ' + abstract", id=pmid, **where)
        annotations.append({"start": start, "end": end, "text": cols[3], "label": cols[4],
                            **({"concept": cols[5]} if len(cols) > 5 else {})})
    return InputDocument(pmid, [Passage(0, text)], annotations=annotations, title=title, abstract=abstract,
                         **where)


def _pmid_of(raw: bytes) -> Optional[str]:
    head = re.match(rb"^([^\t|]+)[|\t]", raw)
    return head.group(1).decode("utf8", errors="replace") if head else None


def xml_chunks(file_: IO[bytes], byte: int = 0, block: int = 1 << 20) -> Iterator[Tuple[int, bytes]]:
    """Cut a BioC XML stream into its `<document>...</document>` elements,
    without parsing them, so that one broken document does not hide the rest.
    The bytes before the first document (the collection's header) come first,
    at its own offset, when reading from the start.

    YIELDS (Tuple[int, bytes]): (byte offset, bytes) of the header, then of each document.
    """
    buffer = b""
    base = byte  # the offset of buffer[0]
    seen_document = byte > 0
    eof = False
    while True:
        start = _XML_DOC_START.search(buffer)
        end = buffer.find(_XML_DOC_END, start.start()) if start else -1
        if start and end >= 0:
            if not seen_document:
                yield base, buffer[: start.start()]
                seen_document = True
            stop = end + len(_XML_DOC_END)
            yield base + start.start(), buffer[start.start(): stop]
            base, buffer = base + stop, buffer[stop:]
            continue
        if eof:
            break
        more = file_.read(block)
        eof = not more
        buffer += more
    if not seen_document:
        yield base, buffer
    elif _XML_DOC_START.search(buffer):
        start = _XML_DOC_START.search(buffer)
        assert start is not None
        yield base + start.start(), buffer[start.start():]  # an unclosed last document


def _read_bioc_xml(source: InputSource, file_: IO[bytes], byte: int, index: int, _: int) -> Iterator[Record]:
    """Each `<document>` is parsed on its own by `bioc`."""
    from bioc import biocxml

    chunks = xml_chunks(file_, byte)
    if byte == 0:
        next(chunks, None)  # the collection's header: read by `read_collection_info`
    for index, (offset, chunk) in enumerate(chunks, index):
        found = _XML_ID.search(chunk)
        doc_id = found.group(1).decode("utf8", errors="replace") if found else None
        where: Dict[str, Any] = {"index": index, "byte": offset, "id": doc_id}
        text, why = _decode(chunk, "document")
        if text is None:
            yield InputError(source.path, why, **where)
            continue
        try:
            document = biocxml.loads(_BIOC_SHELL.format(text)).documents[0]
        except Exception as err:  # lxml's XMLSyntaxError and bioc's own errors
            yield InputError(source.path, f"invalid XML document: {err}", **where)
            continue
        yield _bioc_record(source.path, document, where)


def read_collection_info(source: InputSource) -> Any:
    """The BioC collection of a BioC file without its documents (source, date,
    key, infons), for the output; an empty collection if it cannot be read.

    RETURNS (bioc.BioCCollection): The collection.
    """
    import bioc
    from bioc import biocxml

    try:
        if source.format == "bioc-xml":
            with _open(source.path) as file_:
                header = next(xml_chunks(file_), (0, b""))[1].decode("utf8")
            header = re.sub(r"^\s*<\?xml[^>]*\?>", "", header).replace("</collection>", "")
            header = re.sub(r"<!DOCTYPE[^>]*>", "", header)
            return biocxml.loads(header + "</collection>")
        if source.format == "bioc-json":
            obj = _load_json_file(source.path)
            collection = bioc.BioCCollection()
            collection.source, collection.date, collection.key = (str(obj.get(k) or "") for k in
                                                                  ("source", "date", "key"))
            collection.infons = dict(obj.get("infons") or {})
            return collection
    except Exception:  # the documents' own errors are reported by the reader
        pass
    return bioc.BioCCollection()


def _bioc_record(path: str, document: Any, where: Dict[str, Any]) -> Record:
    passages = [Passage(int(p.offset), p.text) for p in document.passages if p.text]
    if not any(p.text.strip() for p in passages):
        return InputError(path, "empty text (no passage has text)", **{**where, "id": document.id})
    annotations = [
        {"id": ann.id, "label": ann.infons.get("type"), "text": ann.text,
         "locations": [[loc.offset, loc.offset + loc.length] for loc in ann.locations]}
        for container in [document, *document.passages] for ann in container.annotations
    ]
    place = {k: v for k, v in where.items() if k != "id"}
    return InputDocument(str(document.id), passages, annotations=annotations, bioc=document, **place)


def _read_bioc_json(source: InputSource, start_index: int) -> Iterator[Record]:
    """A BioC JSON collection, read whole; each document is parsed on its own."""
    from bioc.biocjson.decoder import parse_doc

    try:
        obj = _load_json_file(source.path)
    except (OSError, EOFError, ValueError) as err:
        yield InputError(source.path, f"broken JSON: {err}; expected a BioC JSON collection", index=0)
        return
    documents = obj.get("documents") if isinstance(obj, dict) else None
    if not isinstance(documents, list):
        yield InputError(source.path, "expected a BioC JSON collection with a 'documents' list", index=0)
        return
    for index, doc in enumerate(documents[start_index:], start_index):
        doc_id = str(doc.get("id")) if isinstance(doc, dict) and doc.get("id") is not None else None
        where: Dict[str, Any] = {"index": index, "byte": 0, "id": doc_id}
        if _has_surrogates(doc):
            yield InputError(source.path, f"bytes that are not UTF-8 in document {index}", **where)
            continue
        try:
            document = parse_doc(doc)
            if not all(isinstance(p.text, str) and isinstance(p.offset, int) for p in document.passages):
                raise TypeError("a passage's text must be a string and its offset an integer")
        except (KeyError, TypeError, AttributeError, ValueError) as err:
            yield InputError(source.path, f"invalid BioC JSON document {index}: {err!r}", **where)
            continue
        yield _bioc_record(source.path, document, where)


_json_cache: Dict[Tuple[str, int, int], Any] = {}


def _load_json_file(path: str) -> Any:
    """Parse a JSON file, keeping the last one parsed: each shard of a BioC
    JSON file reads the whole file."""
    stat = Path(path).stat()
    key = (path, stat.st_size, stat.st_mtime_ns)
    if key not in _json_cache:
        _json_cache.clear()
        with _open(path) as file_:
            # surrogateescape: bytes that are not UTF-8 are found per document.
            _json_cache[key] = json.loads(file_.read().decode("utf8", errors="surrogateescape"))
    return _json_cache[key]


def _has_surrogates(obj: Any) -> bool:
    if isinstance(obj, str):
        return any("\udc80" <= c <= "\udcff" for c in obj)
    if isinstance(obj, dict):
        return any(_has_surrogates(k) or _has_surrogates(v) for k, v in obj.items())
    if isinstance(obj, list):
        return any(_has_surrogates(v) for v in obj)
    return False


def count_records(source: InputSource, every: int) -> Tuple[int, List[Tuple[int, int, int]]]:
    """Count a file's records, noting where every `every`-th one starts.

    source (InputSource): The file.
    every (int): The shard size.
    RETURNS (Tuple[int, List[Tuple[int, int, int]]]): The number of records
        and, for records 0, every, 2*every, ..., their (index, byte offset,
        line), the arguments of `read_records` that start there.
    """
    n = 0
    starts: List[Tuple[int, int, int]] = []
    for record in read_records(source):
        if n % every == 0:
            starts.append((n, record.byte, record.line or 1))
        n += 1
    return n, starts


def passages_of(documents: Sequence[InputDocument]) -> List[Tuple[int, Passage]]:
    """(document position, passage) of every passage with text."""
    return [(i, p) for i, doc in enumerate(documents) for p in doc.passages if p.text]


__all__ = ["FORMATS", "InputDocument", "InputError", "InputSource", "Passage", "Record", "count_records",
           "detect_format", "read_collection_info", "read_records"]
