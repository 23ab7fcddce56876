"""The records that the input readers yield: documents to annotate, errors
for documents that cannot be, and the input files they come from."""

import gzip
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Dict, List, Optional, Tuple, Union, cast


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
            parts.append(passage.text[max(0, end - passage.offset) :])
            end = max(end, passage.offset + len(passage.text))
        return "".join(parts)


@dataclass
class InputError:
    """A document of the input that cannot be annotated, and why.

    byte (int): Where the record starts; for the rest of a file that cannot
        be read (a truncated .gz), where that rest starts, so that reading
        from there gives this error again, never the file's first document.
    size (Optional[int]): The record's size in bytes, for one over the bound.
    """

    file: str
    reason: str
    index: int = 0
    line: Optional[int] = None
    byte: int = 0
    id: Optional[str] = None
    size: Optional[int] = None

    def to_dict(self) -> Dict[str, Any]:
        """RETURNS (Dict[str, Any]): The errors.jsonl record."""
        record = {"file": self.file, "line": self.line, "byte": self.byte, "id": self.id, "reason": self.reason}
        if self.size is not None:
            record["size"] = self.size
        return record


@dataclass
class InputSkipped:
    """A record of the input that holds no document to annotate: PubMed's
    `<DeleteCitation>` of an update file, which lists the PMIDs that PubMed
    deleted. It is counted (`n_skipped`) and its PMIDs recorded in the
    shard's manifest line (`deleted`) and in summary.json."""

    file: str
    reason: str
    index: int = 0
    line: Optional[int] = None
    byte: int = 0
    deleted: List[str] = field(default_factory=list)


Record = Union[InputDocument, InputError, InputSkipped]


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


def open_input(path: Union[str, Path]) -> IO[bytes]:
    """Open a file for reading bytes, decompressing a ".gz"."""
    if str(path).endswith(".gz"):
        return cast(IO[bytes], gzip.open(path, "rb"))
    return open(path, "rb")


def decode(raw: bytes, what: str = "line") -> Tuple[Optional[str], str]:
    """(text, "") or (None, reason) for bytes that are not UTF-8."""
    try:
        return raw.decode("utf8"), ""
    except UnicodeDecodeError as err:
        return None, f"bytes that are not UTF-8 ({raw[err.start]:#04x} at byte {err.start} of the {what})"
