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
from pathlib import Path
from typing import (
    IO,
    Any,
    Callable,
    Dict,
    Iterator,
    List,
    Optional,
    Sequence,
    Tuple,
    Union,
)

from .bioc_input import read_bioc_json, read_bioc_xml, read_collection_info, xml_chunks
from .records import (
    InputDocument,
    InputError,
    InputSource,
    Passage,
    Record,
    decode,
    open_input,
    read_lines,
)

FORMATS = ("text", "jsonl", "pubtator", "bioc-xml", "bioc-json")
_PUBTATOR_HEAD = re.compile(r"^([^\t|]*)\|([ta])\|(.*)$", re.DOTALL)


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
    for suffixes, fmt in (
        ((".jsonl", ".ndjson"), "jsonl"),
        ((".xml",), "bioc-xml"),
        ((".json",), "bioc-json"),
        ((".pubtator",), "pubtator"),
    ):
        if name.endswith(suffixes):
            return fmt
    try:
        with open_input(path) as file_:
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
        "text": _read_text,
        "jsonl": _read_jsonl,
        "pubtator": _read_pubtator,
        "bioc-xml": read_bioc_xml,
    }
    if source.format not in FORMATS:
        raise ValueError(f"unknown input format {source.format!r}: expected one of {', '.join(FORMATS)}")
    if source.format == "bioc-json":
        for record in read_bioc_json(source, start_index):
            record.file = source.path
            yield record
        return
    index = start_index
    try:
        with open_input(source.path) as file_:
            if start_byte:
                file_.seek(start_byte)
            for record in readers[source.format](source, file_, start_byte, start_index, start_line):
                index = record.index + 1
                record.file = source.path
                yield record
    except (OSError, EOFError, gzip.BadGzipFile) as err:
        # A truncated or corrupt .gz (or a file gone): what was read is kept, the rest is one error.
        yield InputError(source.path, f"cannot read the rest of the file: {err}", index=index)


def _read_text(source: InputSource, file_: IO[bytes], byte: int, first: int, _: int) -> Iterator[Record]:
    """One document per line; its id is the line number."""
    for index, (offset, raw) in enumerate(read_lines(file_, byte), first):
        line = index + 1
        text, why = decode(raw)
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


def _read_jsonl(source: InputSource, file_: IO[bytes], byte: int, first: int, _: int) -> Iterator[Record]:
    """One JSON object per line; the id and text fields are configurable."""
    for index, (offset, raw) in enumerate(read_lines(file_, byte), first):
        line = index + 1
        where: Dict[str, Any] = {"index": index, "line": line, "byte": offset}
        text, why = decode(raw)
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
        bad = [
            name for name, value in zip(source.text_fields, values) if value is not None and not isinstance(value, str)
        ]
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
    for i, (offset, raw) in enumerate(read_lines(file_, byte)):
        if raw.strip():
            if not block:
                start, first = offset, i
            block.append(raw)
        elif block:
            yield start, first, block
            block = []
    if block:
        yield start, first, block


def _read_pubtator(source: InputSource, file_: IO[bytes], byte: int, start: int, line: int) -> Iterator[Record]:
    """'PMID|t|title', 'PMID|a|abstract', then annotation lines; a blank line
    between documents."""
    for index, (offset, first, block) in enumerate(_pubtator_blocks(file_, byte), start):
        yield _parse_pubtator_block(source.path, block, index, line + first, offset)


def _parse_pubtator_block(path: str, block: List[bytes], index: int, line: int, offset: int) -> Record:
    where: Dict[str, Any] = {"index": index, "line": line, "byte": offset}
    decoded: List[str] = []
    for k, raw in enumerate(block):
        text, why = decode(raw)
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
            return InputError(
                path, f"'|a|' line of PMID {second.group(1)!r} after the title of {pmid!r}", id=pmid, **where
            )
        abstract, rest = second.group(3), rest[1:]
    text = title if abstract is None else f"{title} {abstract}"
    if not text.strip():
        return InputError(path, "empty text", id=pmid, **where)
    annotations: List[Dict[str, Any]] = []
    for k, ann_line in enumerate(rest, len(decoded) - len(rest)):
        at = f"line {line + k}"
        cols = ann_line.split("\t")
        if len(cols) < 3 or cols[0] != pmid:
            return InputError(
                path,
                f"{at}: expected 'PMID<TAB>start<TAB>end<TAB>mention<TAB>type' or a relation "
                f"of {pmid}, found {ann_line[:60]!r}",
                id=pmid,
                **where,
            )
        if not (cols[1].isascii() and cols[1].isdigit()):
            annotations.append({"relation": cols[1:]})  # e.g. 'PMID<TAB>CID<TAB>...'
            continue
        if len(cols) < 5 or not (cols[2].isascii() and cols[2].isdigit()):
            return InputError(
                path,
                f"{at}: expected 'PMID<TAB>start<TAB>end<TAB>mention<TAB>type', found {ann_line[:60]!r}",
                id=pmid,
                **where,
            )
        start, end = int(cols[1]), int(cols[2])
        if not 0 <= start < end <= len(text):
            return InputError(
                path,
                f"{at}: offsets {start}-{end} outside the text of {pmid} ({len(text)} "
                "characters); expected offsets into title + ' ' + abstract",
                id=pmid,
                **where,
            )
        annotations.append(
            {
                "start": start,
                "end": end,
                "text": cols[3],
                "label": cols[4],
                **({"concept": cols[5]} if len(cols) > 5 else {}),
            }
        )
    return InputDocument(pmid, [Passage(0, text)], annotations=annotations, title=title, abstract=abstract, **where)


def _pmid_of(raw: bytes) -> Optional[str]:
    head = re.match(rb"^([^\t|]+)[|\t]", raw)
    return head.group(1).decode("utf8", errors="replace") if head else None


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


__all__ = [
    "FORMATS",
    "InputDocument",
    "InputError",
    "InputSource",
    "Passage",
    "Record",
    "count_records",
    "detect_format",
    "read_collection_info",
    "read_records",
    "xml_chunks",
]
