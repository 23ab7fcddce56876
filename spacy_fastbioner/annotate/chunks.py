"""Cutting an input stream into its records' bytes, without parsing them.

Reading and planning share these splitters, so that a plan counts exactly the
records that reading yields, and planning costs one pass of cheap boundary
searches instead of parsing every record. Each splitter is linear in its
input: the stream is read once, each byte is searched once, and a record is
held whole only up to `max_bytes`. A record over the bound is skipped to its
end (keeping only its first bytes, for its id) and becomes a `Chunk` without
data, which the readers turn into an error that states its size.
"""

import re
from dataclasses import dataclass
from typing import IO, Iterator, List, Optional, Pattern, Sequence, Tuple

# The first bytes kept of a record over the size bound: enough to find its id.
HEAD_BYTES = 4096
BLOCK = 1 << 20


class UnreadableInput(ValueError):
    """A stream whose structure (not one record's) is broken: the rest of the file is one error."""


@dataclass
class Chunk:
    """One record's bytes and where they are.

    byte (int): The offset of its first byte in the (decompressed) stream.
    size (int): Its size in bytes, complete even when over the bound.
    data (Optional[bytes]): Its bytes; None when it is over the bound.
    line (Optional[int]): The 1-based line of its first byte (line formats).
    head (bytes): Its first HEAD_BYTES bytes, kept when `data` is None.
    next_line (Optional[int]): The line after it (line formats).
    """

    byte: int
    size: int
    data: Optional[bytes]
    line: Optional[int] = None
    head: bytes = b""
    next_line: Optional[int] = None


def read_line(file_: IO[bytes], max_bytes: int) -> Tuple[Optional[bytes], int, bytes]:
    """Read one line, holding at most `max_bytes` of it.

    RETURNS (Tuple[Optional[bytes], int, bytes]): The line with its line break
        (None when over the bound; b"" at the end of the stream), its size in
        bytes, and its first bytes.
    """
    raw = file_.readline(max_bytes + 1)
    if len(raw) <= max_bytes or raw.endswith(b"\n"):
        return raw, len(raw), raw[:HEAD_BYTES]
    head, size = raw[:HEAD_BYTES], len(raw)
    while raw and not raw.endswith(b"\n"):  # skip the rest of the line, a block at a time
        raw = file_.readline(BLOCK)
        size += len(raw)
    return None, size, head


def split_lines(file_: IO[bytes], byte: int, line: int, max_bytes: int) -> Iterator[Chunk]:
    """Each line (its line break removed) is a record."""
    while True:
        raw, size, head = read_line(file_, max_bytes)
        if raw == b"":
            return
        data = None if raw is None else raw.rstrip(b"\r\n")
        yield Chunk(byte, size, data, line, head, line + 1)
        byte, line = byte + size, line + 1


def split_blocks(file_: IO[bytes], byte: int, line: int, max_bytes: int) -> Iterator[Chunk]:
    """Each run of non-blank lines (PubTator's documents) is a record; its
    data holds the lines without their line breaks, joined by b"\\n"."""
    lines: List[bytes] = []
    start = first = size = 0
    over = False
    head = b""
    while True:
        raw, n, line_head = read_line(file_, max_bytes)
        if raw == b"":
            break
        blank = raw is not None and not raw.strip()
        if not blank:
            if not size:
                start, first, head = byte, line, line_head
            size += n
            over = over or raw is None or size > max_bytes
            if not over and raw is not None:
                lines.append(raw.rstrip(b"\r\n"))
        elif size:
            yield Chunk(start, size, None if over else b"\n".join(lines), first, head, line)
            lines, size, over = [], 0, False
        byte, line = byte + n, line + 1
    if size:
        yield Chunk(start, size, None if over else b"\n".join(lines), first, head, line)


def split_elements(
    file_: IO[bytes],
    byte: int,
    starts: Pattern[bytes],
    ends: Sequence[bytes],
    max_bytes: int,
    *,
    header: bool = False,
    block: int = BLOCK,
) -> Iterator[Chunk]:
    """Cut an XML stream into its record elements (e.g. BioC's `<document>`),
    without parsing them, so that one broken element does not hide the rest.
    Each byte is searched once: a search resumes where the last one stopped.

    starts (Pattern[bytes]): Matches a record element's start tag; its first
        group names the element.
    ends (Sequence[bytes]): The end tags, e.g. b"</document>", one of which
        closes each element (an element closed by another's tag is cut there).
    header (bool): First yield the bytes before the first record (the
        collection's header), as a chunk of its own.
    YIELDS (Chunk): The header when asked for, then each element; an unclosed
        last element is yielded as far as it goes.
    """
    end_tags = re.compile(b"|".join(re.escape(end) for end in ends))
    longest_end = max(len(end) for end in ends)
    buffer = b""
    base = byte  # the offset of buffer[0]
    pos = 0  # the search goes on from here: no start tag before it (outside an element), no end tag (inside)
    start: Optional[int] = None  # where the element being read starts in the buffer
    eof = False
    while True:
        if start is None:
            found = starts.search(buffer, pos)
            if found is not None:
                if header:
                    yield Chunk(base, found.start(), buffer[: found.start()])
                    header = False
                start, pos = found.start(), found.end()
                continue
            pos = max(pos, len(buffer) - 64)  # a start tag that the block cut is searched again
            if header and len(buffer) > max_bytes:
                raise UnreadableInput(f"no record element in the first {max_bytes:,} bytes")
        else:
            found = end_tags.search(buffer, pos)
            if found is not None:
                size = found.end() - start
                data = buffer[start : found.end()] if size <= max_bytes else None
                yield Chunk(base + start, size, data, head=buffer[start : start + HEAD_BYTES])
                start, pos = None, found.end()
                continue
            pos = max(start, len(buffer) - longest_end + 1)
            if len(buffer) - start > max_bytes:  # over the bound: skip to its end, holding a block at a time
                head = buffer[start : start + HEAD_BYTES]
                size, rest = _skip_element(file_, buffer[start:], end_tags, block)
                yield Chunk(base + start, size, None, head=head)
                base, buffer, pos, start = base + start + size, rest, 0, None
                continue
        if eof:
            break
        # Drop what is behind (not the header): bytes are copied once per block, not once per element.
        drop = 0 if header else (pos if start is None else start)
        base, buffer, pos = base + drop, buffer[drop:], pos - drop
        start = None if start is None else start - drop
        more = file_.read(block)
        eof = not more
        buffer += more
    if header:
        yield Chunk(base, len(buffer), buffer)
    elif start is not None:
        yield Chunk(base + start, len(buffer) - start, buffer[start:])  # an unclosed last element


def _skip_element(file_: IO[bytes], held: bytes, end_tags: "re.Pattern[bytes]", block: int) -> Tuple[int, bytes]:
    """Read past an element over the bound, holding a block at a time.

    RETURNS (Tuple[int, bytes]): The element's size in bytes, and the bytes
        read after it.
    """
    size, tail = len(held), held[-64:]
    while True:
        more = file_.read(block)
        if not more:
            return size, b""
        window = tail + more
        found = end_tags.search(window)
        if found is not None:
            return size + found.end() - len(tail), window[found.end() :]
        size += len(more)
        tail = window[-64:]
