"""BioC XML input, through the `bioc` package: the stream is cut into its
`<document>` elements (`chunks.split_elements`) and each is parsed on its own,
so that a broken one becomes an error record and the others are read. BioC
JSON is streamed by `bioc_json.py`."""

import re
from typing import IO, Any, Dict, Iterator, Tuple

from .bioc_json import collection_info
from .chunks import Chunk, split_elements
from .records import InputDocument, InputError, InputSource, Passage, Record, decode, open_input

ROOT = "collection"
STARTS = re.compile(rb"<(document)[\s>]")
ENDS = (b"</document>",)
_XML_ID = re.compile(rb"<id>\s*([^<]*?)\s*</id>")
_BIOC_SHELL = "<collection><source></source><date></date><key></key>{}</collection>"


def xml_chunks(file_: IO[bytes], byte: int = 0, block: int = 1 << 20) -> Iterator[Tuple[int, bytes]]:
    """Cut a BioC XML stream into its `<document>...</document>` elements,
    without parsing them. The bytes before the first document (the
    collection's header) come first, at their own offset, when reading from
    the start.

    YIELDS (Tuple[int, bytes]): (byte offset, bytes) of the header, then of each document.
    """
    for chunk in split_elements(file_, byte, STARTS, ENDS, 1 << 62, header=byte == 0, block=block):
        yield chunk.byte, chunk.data or b""


def id_in(head: bytes) -> Any:
    """The `<id>` in a document's first bytes, or None."""
    found = _XML_ID.search(head)
    return found.group(1).decode("utf8", errors="replace") if found else None


def parse_bioc_xml_chunk(path: str, chunk: Chunk, where: Dict[str, Any]) -> Record:
    """Parse one `<document>` with `bioc`.

    path (str): The file.
    chunk (Chunk): The document's bytes (not None).
    where (Dict[str, Any]): Its index and byte.
    RETURNS (Record): The document or an error.
    """
    from bioc import biocxml

    assert chunk.data is not None
    doc_id = id_in(chunk.data)
    text, why = decode(chunk.data, "document")
    if text is None:
        return InputError(path, why, id=doc_id, **where)
    try:
        document = biocxml.loads(_BIOC_SHELL.format(text)).documents[0]
    except Exception as err:  # lxml's XMLSyntaxError and bioc's own errors
        return InputError(path, f"invalid XML document: {err}", id=doc_id, **where)
    return bioc_record(path, document, where)


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
            with open_input(source.path) as file_:
                obj = collection_info(file_)
            collection = bioc.BioCCollection()
            collection.source, collection.date, collection.key = (
                str(obj.get(k) or "") for k in ("source", "date", "key")
            )
            collection.infons = dict(obj.get("infons") or {})
            return collection
    except Exception:  # the documents' own errors are reported by the reader
        pass
    return bioc.BioCCollection()


def bioc_record(path: str, document: Any, where: Dict[str, Any]) -> Record:
    """A `bioc.BioCDocument` as a document to annotate (or an error if it has no text)."""
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
