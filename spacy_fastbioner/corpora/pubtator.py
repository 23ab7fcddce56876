"""The PubTator format, parsed by one set of rules for the training readers
(`readers.py`) and the annotate command's input (`annotate/formats.py`).

A document is a block of lines: 'PMID|t|title', 'PMID|a|abstract', then
mention lines 'PMID<TAB>start<TAB>end<TAB>mention<TAB>type[<TAB>concept id]'
with offsets into `title + " " + abstract`, and relation lines
'PMID<TAB>type<TAB>...' (e.g. CID). Blocks are separated by blank lines. The
callers cut the blocks (the readers from a file's lines, annotate from byte
ranges it can resume at) and decode their bytes; this module checks a block.
"""

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import List, Optional, Sequence, Tuple, Union

MENTION_FORMAT = "'PMID<TAB>start<TAB>end<TAB>mention<TAB>type'"
HEAD = re.compile(r"^([^\t|]+)\|([ta])\|(.*)$", re.DOTALL)
# The second column of a relation line, e.g. CID; a mention's is an integer.
RELATION = re.compile(r"^[A-Za-z_][\w-]*$")


class PubTatorError(ValueError):
    """A PubTator block that does not hold what the format promises.

    path (Union[str, Path]): The file.
    line (int): The 1-based line number.
    message (str): What was found and what was expected.
    pmid (Optional[str]): The block's document id, where its title line gave one.
    """

    def __init__(self, path: Union[str, Path], line: int, message: str, pmid: Optional[str] = None) -> None:
        self.path, self.line, self.message, self.pmid = Path(path), line, message, pmid
        super().__init__(f"{path}:{line}: {message}")


@dataclass
class PubTatorMention:
    """A mention line: offsets into the document's text, its columns and its line."""

    start: int
    end: int
    text: str  # the mention column, as written (the readers compare it with the document's text)
    label: str
    # The 6th column ("" when absent): MeSH or OMIM, "-1" for none, "A|B" for a
    # composite mention, "A+B" for a combination of concepts.
    concept_id: str
    line: int


@dataclass
class PubTatorBlock:
    """One PubTator document, as its block of lines holds it."""

    pmid: str
    title: str
    abstract: Optional[str]  # None where the block has no '|a|' line
    line: int  # the title's line
    mentions: List[PubTatorMention] = field(default_factory=list)
    # Each relation line's (line, columns after the PMID), e.g. (4, ["CID", "D1", "D2"]).
    relations: List[Tuple[int, List[str]]] = field(default_factory=list)

    @property
    def text(self) -> str:
        """The text that mention offsets index: `title + " " + abstract`."""
        return self.title if self.abstract is None else f"{self.title} {self.abstract}"


def quote(text: str, width: int = 60) -> str:
    """`repr` of a text, cut to `width` characters, for error messages."""
    return repr(text if len(text) <= width else text[:width] + "...")


def parse_pubtator_block(
    path: Union[str, Path], lines: Sequence[str], first_line: int, *, require_abstract: bool = True
) -> PubTatorBlock:
    """Parse and check one document's block of lines.

    path (Union[str, Path]): The file, for error messages.
    lines (Sequence[str]): The block's decoded lines, without line ends or blank lines.
    first_line (int): The 1-based line number of `lines[0]` in the file.
    require_abstract (bool): Refuse a block without a 'PMID|a|abstract' line
        (gold corpora have one); annotate accepts a title alone.
    RETURNS (PubTatorBlock): The document.
    RAISES (PubTatorError): At the first line that breaks the format, naming file and line.
    """
    if not lines:
        raise PubTatorError(path, first_line, "empty block; expected 'PMID|t|title'")
    head = HEAD.match(lines[0])
    if not head or head.group(2) != "t":
        raise PubTatorError(path, first_line, _not_a_title(lines[0], head))
    block = PubTatorBlock(head.group(1), head.group(3), None, first_line)
    k = 1
    second = HEAD.match(lines[1]) if len(lines) > 1 else None
    if second and second.group(2) == "a":
        _check_pmid(path, first_line + 1, second.group(1), block)
        block.abstract, k = second.group(3), 2
    elif require_abstract:
        found = f", found {quote(lines[1])}" if len(lines) > 1 else ""
        raise PubTatorError(
            path,
            first_line + min(1, len(lines) - 1),
            f"expected 'PMID|a|abstract' after the title of {block.pmid} (line {first_line}){found}",
            block.pmid,
        )
    for i, line in enumerate(lines[k:], first_line + k):
        _parse_line(path, i, line, block)
    return block


def _not_a_title(line: str, head: Optional["re.Match[str]"]) -> str:
    if head:
        return f"'|a|' line without a 'PMID|t|title' line before it; expected 'PMID|t|title' first, found {quote(line)}"
    if "\t" in line:
        return f"mention line before its document's 'PMID|t|title' and 'PMID|a|abstract' lines, found {quote(line)}"
    return (
        f"expected 'PMID|t|title', 'PMID|a|abstract', a tab-separated mention line or a blank line, found {quote(line)}"
    )


def _check_pmid(path: Union[str, Path], i: int, pmid: str, block: PubTatorBlock) -> None:
    if pmid != block.pmid:
        raise PubTatorError(
            path,
            i,
            f"PMID {pmid!r} does not match the current document {block.pmid!r} (title on line {block.line})",
            block.pmid,
        )


def _parse_line(path: Union[str, Path], i: int, line: str, block: PubTatorBlock) -> None:
    """Add a mention or relation line to the block."""
    head = HEAD.match(line)
    if head or "\t" not in line:
        # A second title or abstract without a blank line before it, or no columns at all.
        raise PubTatorError(path, i, _not_a_title(line, head), block.pmid)
    cols = line.split("\t")
    if RELATION.match(cols[1]):
        if cols[0] != block.pmid or len(cols) < 3:
            raise PubTatorError(
                path,
                i,
                f"expected a mention {MENTION_FORMAT} or a relation 'PMID<TAB>type<TAB>...' of the current "
                f"document, found {quote(line)}",
                block.pmid,
            )
        block.relations.append((i, cols[1:]))
        return
    if len(cols) < 5:
        raise PubTatorError(
            path, i, f"expected {MENTION_FORMAT}, found {quote(line)} ({len(cols)} columns)", block.pmid
        )
    _check_pmid(path, i, cols[0], block)
    if not all(c.isascii() and c.isdigit() for c in cols[1:3]):
        raise PubTatorError(path, i, f"expected integer offsets, found start={cols[1]!r} end={cols[2]!r}", block.pmid)
    start, end, label = int(cols[1]), int(cols[2]), cols[4].strip()
    if start >= end:
        raise PubTatorError(path, i, f"expected start < end, found start={start} end={end}", block.pmid)
    n_chars = len(block.text)
    if end > n_chars:
        raise PubTatorError(
            path,
            i,
            f"offsets {start}-{end} outside the text of {block.pmid} ({n_chars} characters); "
            "expected offsets into title + ' ' + abstract",
            block.pmid,
        )
    if not label:
        raise PubTatorError(path, i, f"expected an entity type in column 5, found {quote(line)}", block.pmid)
    concept_id = cols[5].strip() if len(cols) > 5 else ""
    block.mentions.append(PubTatorMention(start, end, cols[3], label, concept_id, i))


__all__ = ["MENTION_FORMAT", "PubTatorBlock", "PubTatorError", "PubTatorMention", "parse_pubtator_block"]
