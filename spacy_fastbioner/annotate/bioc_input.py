"""BioC XML and BioC JSON input, through the `bioc` package: each document
is parsed on its own, so that a broken one becomes an error record and the
others are read."""

import json
import re
from pathlib import Path
from typing import IO, Any, Dict, Iterator, Tuple

from .records import (
    InputDocument,
    InputError,
    InputSource,
    Passage,
    Record,
    decode,
    open_input,
)

_XML_DOC_START = re.compile(rb"<document[\s>]")
_XML_DOC_END = b"</document>"
_XML_ID = re.compile(rb"<id>\s*([^<]*?)\s*</id>")
_BIOC_SHELL = "<collection><source></source><date></date><key></key>{}</collection>"


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
            yield base + start.start(), buffer[start.start() : stop]
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
        yield base + start.start(), buffer[start.start() :]  # an unclosed last document


def read_bioc_xml(source: InputSource, file_: IO[bytes], byte: int, index: int, _: int) -> Iterator[Record]:
    """Each `<document>` is parsed on its own by `bioc`."""
    from bioc import biocxml

    chunks = xml_chunks(file_, byte)
    if byte == 0:
        next(chunks, None)  # the collection's header: read by `read_collection_info`
    for i, (offset, chunk) in enumerate(chunks, index):
        found = _XML_ID.search(chunk)
        doc_id = found.group(1).decode("utf8", errors="replace") if found else None
        where: Dict[str, Any] = {"index": i, "byte": offset, "id": doc_id}
        text, why = decode(chunk, "document")
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
            with open_input(source.path) as file_:
                header = next(xml_chunks(file_), (0, b""))[1].decode("utf8")
            header = re.sub(r"^\s*<\?xml[^>]*\?>", "", header).replace("</collection>", "")
            header = re.sub(r"<!DOCTYPE[^>]*>", "", header)
            return biocxml.loads(header + "</collection>")
        if source.format == "bioc-json":
            obj = _load_json_file(source.path)
            collection = bioc.BioCCollection()
            collection.source, collection.date, collection.key = (
                str(obj.get(k) or "") for k in ("source", "date", "key")
            )
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
        {
            "id": ann.id,
            "label": ann.infons.get("type"),
            "text": ann.text,
            "locations": [[loc.offset, loc.offset + loc.length] for loc in ann.locations],
        }
        for container in [document, *document.passages]
        for ann in container.annotations
    ]
    place = {k: v for k, v in where.items() if k != "id"}
    return InputDocument(str(document.id), passages, annotations=annotations, bioc=document, **place)


def read_bioc_json(source: InputSource, start_index: int) -> Iterator[Record]:
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
        with open_input(path) as file_:
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
