"""BioC JSON input, streamed: the `documents` array of a collection is cut
into its elements by a scanner of JSON's brackets and strings, so that no more
than one document (up to the size bound) is held at a time, and a shard
resumes at its first document's byte. Each document is then parsed on its
own (`json`, then `bioc`), so that a broken one is one error record.

The collection's other keys (source, date, key, infons) are read by
`collection_info`, in a pass that holds none of the documents.
"""

import json
import re
from typing import IO, Any, Dict, Iterator, Optional, Tuple

from .chunks import BLOCK, HEAD_BYTES, Chunk, UnreadableInput
from .records import InputError

_STRUCTURE = re.compile(rb'[\[\]{}"]')
_STRING_END = re.compile(rb'(?:[^"\\]|\\.)*"', re.DOTALL)
_SPACE = re.compile(rb"[\s,]*")
_SCALAR = re.compile(rb"[^,\]}\s]*")
_ID = re.compile(rb'"id"\s*:\s*"((?:[^"\\]|\\.)*)"')


def _match_end(pattern: "re.Pattern[bytes]", data: bytes, at: int) -> int:
    """The end of a match of a pattern that matches the empty string too."""
    found = pattern.match(data, at)
    return at if found is None else found.end()


class BioCJsonError(UnreadableInput):
    """A BioC JSON file whose structure (not one document's) is broken."""

    def __init__(self, what: str) -> None:
        super().__init__(f"broken JSON: {what}")


class _Stream:
    """A byte stream read a block at a time, with its offset."""

    def __init__(self, file_: IO[bytes], byte: int) -> None:
        self.file, self.base, self.buffer, self.at, self.eof = file_, byte, b"", 0, False

    def more(self) -> bool:
        """Read another block, dropping what is behind `at`."""
        if self.eof:
            return False
        self.base, self.buffer, self.at = self.base + self.at, self.buffer[self.at :], 0
        data = self.file.read(BLOCK)
        self.eof = not data
        self.buffer += data
        return bool(data)

    def skip_space(self) -> Optional[int]:
        """Skip whitespace and commas; the next byte, or None at the end."""
        while True:
            self.at = _match_end(_SPACE, self.buffer, self.at)
            if self.at < len(self.buffer):
                return self.buffer[self.at]
            if not self.more():
                return None


def value_end(stream: _Stream, max_bytes: int) -> Tuple[int, Optional[bytes], bytes]:
    """Read the JSON value at `stream.at` (an object, array, string or
    scalar) to its end, holding at most `max_bytes` of it.

    RETURNS (Tuple[int, Optional[bytes], bytes]): Its size, its bytes (None
        when over the bound) and its first bytes.
    """
    start = pos = stream.at
    origin = stream.base + start
    size = depth = 0  # size: the value's bytes dropped from the buffer already
    head = b""
    scalar = stream.buffer[start : start + 1] not in (b"{", b"[", b'"')
    while True:
        buffer = stream.buffer
        done: Optional[int] = None
        if scalar:
            pos = _match_end(_SCALAR, buffer, pos)
            done = pos if pos < len(buffer) else None
        else:
            while done is None:
                token = _STRUCTURE.search(buffer, pos)
                if token is None:
                    pos = len(buffer)
                    break
                if token.group() == b'"':
                    end = _STRING_END.match(buffer, token.end())
                    if end is None:  # the string goes on in the next block: scan it again then
                        pos = token.start()
                        break
                    pos = end.end()
                else:
                    depth += 1 if token.group() in b"[{" else -1
                    pos = token.end()
                if depth == 0:
                    done = pos
        if done is not None:
            stream.at = done
            total = size + done - start
            return total, None if total > max_bytes else buffer[start:done], head or buffer[start : start + HEAD_BYTES]
        if size + pos - start > max_bytes:  # over the bound: keep its first bytes only, count the rest
            head = head or buffer[start : start + HEAD_BYTES]
            size, start = size + pos - start, pos
        stream.at = start
        if not stream.more():
            if scalar:
                stream.at = pos
                return size + pos - start, buffer[start:pos], head or buffer[start : start + HEAD_BYTES]
            raise BioCJsonError(f"the file ends inside a value that starts at byte {origin}")
        pos, start = pos - start, 0  # `more` dropped the bytes before `start`


def split_documents(file_: IO[bytes], byte: int, max_bytes: int) -> Iterator[Chunk]:
    """The elements of a BioC JSON collection's `documents` array. From byte
    0, the collection's other keys are skipped; from another byte (a shard's
    first document), the array's elements are read from there.

    YIELDS (Chunk): Each document's bytes.
    """
    stream = _Stream(file_, byte)
    if byte == 0:
        if stream.skip_space() != ord("{"):
            raise BioCJsonError("expected a BioC JSON collection, a JSON object, at byte 0")
        stream.at += 1
        while True:
            if stream.skip_space() in (None, ord("}")):
                raise BioCJsonError("expected a BioC JSON collection with a 'documents' list")
            _, key, _ = value_end(stream, 1 << 16)
            if stream.skip_space() != ord(":"):
                raise BioCJsonError(f"expected ':' after a key at byte {stream.base + stream.at}")
            stream.at += 1
            stream.skip_space()
            if key == b'"documents"':
                if stream.buffer[stream.at : stream.at + 1] != b"[":
                    raise BioCJsonError("expected a BioC JSON collection with a 'documents' list")
                stream.at += 1
                break
            value_end(stream, 0)  # another key's value: skipped, not held
    while True:
        char = stream.skip_space()
        if char is None:
            raise BioCJsonError(f"the file ends inside the 'documents' list (byte {stream.base + stream.at})")
        if char == ord("]"):
            return
        offset = stream.base + stream.at
        size, data, head = value_end(stream, max_bytes)
        yield Chunk(offset, size, data, head=head)


def id_in(head: bytes) -> Optional[str]:
    """The first `"id"` in a document's first bytes, or None."""
    found = _ID.search(head)
    return found.group(1).decode("utf8", errors="replace") if found else None


def parse_document(path: str, chunk: Chunk, where: Dict[str, Any]) -> Any:
    """A BioC JSON document's bytes as a `bioc.BioCDocument`, or an error.

    RETURNS (Union[bioc.BioCDocument, InputError]): The document or the error.
    """
    from bioc.biocjson.decoder import parse_doc

    assert chunk.data is not None
    doc_id = id_in(chunk.head)
    try:
        obj = json.loads(chunk.data.decode("utf8"))
    except UnicodeDecodeError as err:
        return InputError(path, f"bytes that are not UTF-8 in document {where['index']} ({err})", id=doc_id, **where)
    except ValueError as err:
        return InputError(path, f"broken JSON in document {where['index']}: {err}", id=doc_id, **where)
    if isinstance(obj, dict) and obj.get("id") is not None:
        doc_id = str(obj["id"])
    try:
        document = parse_doc(obj)
        if not all(isinstance(p.text, str) and isinstance(p.offset, int) for p in document.passages):
            raise TypeError("a passage's text must be a string and its offset an integer")
    except (KeyError, TypeError, AttributeError, ValueError) as err:
        return InputError(path, f"invalid BioC JSON document {where['index']}: {err!r}", id=doc_id, **where)
    return document


def collection_info(file_: IO[bytes]) -> Dict[str, Any]:
    """The collection's keys other than `documents` (documents are skipped,
    not held).

    RETURNS (Dict[str, Any]): source, date, key, infons where present.
    """
    stream = _Stream(file_, 0)
    info: Dict[str, Any] = {}
    if stream.skip_space() != ord("{"):
        return info
    stream.at += 1
    while stream.skip_space() not in (None, ord("}")):
        _, key, _ = value_end(stream, 1 << 16)
        if stream.skip_space() != ord(":"):
            break
        stream.at += 1
        stream.skip_space()
        name = json.loads(key) if key else None
        _, value, _ = value_end(stream, 1 << 20 if name != "documents" else 0)
        if name in ("source", "date", "key", "infons") and value is not None:
            info[name] = json.loads(value)
    return info
