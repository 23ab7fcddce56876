"""PubMed / MEDLINE XML input: NLM's yearly baseline and daily update files
(root `<PubmedArticleSet>`, e.g. pubmed25n0001.xml.gz, about 30,000 articles).

The stream is cut into its `<PubmedArticle>`, `<PubmedBookArticle>` and
`<DeleteCitation>` elements without parsing it whole (`chunks.split_elements`),
and each element is parsed on its own with the standard library's
ElementTree. A whole-file `iterparse` would stream too, but one malformed
article would end the file's reading, and it gives no byte offset at which a
shard can resume; element by element, a broken article is one error record
and every shard starts at its first element's byte.

What a document is:
- its id is the `PMID` of `MedlineCitation` (`BookDocument` for books);
- its text is `ArticleTitle` (or `VernacularTitle` where the title is empty),
  a space, then the `AbstractText` sections in file order, joined by spaces.
  A structured abstract's section labels (`Label="METHODS"`) are not put into
  the text: they are headings, not sentences, and leaving them out keeps the
  text and its offsets equal to PubTator's title + " " + abstract;
- inline markup (`<i>`, `<b>`, `<sup>`, `<sub>`, MathML) keeps its text;
- an article without an abstract is annotated on its title alone (`abstract`
  is None, as for a PubTator document without an `|a|` line); one without a
  title or abstract is an error ("empty text");
- a `<DeleteCitation>` (update files) is no document: it is counted as
  skipped and its PMIDs are recorded in the manifest and in summary.json.
"""

import re
from typing import Any, Dict, List, Optional
from xml.etree import ElementTree

from .chunks import Chunk
from .records import InputDocument, InputError, InputSkipped, Passage, Record

ROOT = "PubmedArticleSet"
ELEMENTS = ("PubmedArticle", "PubmedBookArticle", "DeleteCitation")
STARTS = re.compile(rb"<(" + b"|".join(e.encode() for e in ELEMENTS) + rb")[\s>]")
ENDS = tuple(f"</{e}>".encode() for e in ELEMENTS)
_PMID = re.compile(rb"<PMID[^>]*>\s*([^<]*?)\s*</PMID>")


def pmid_in(head: bytes) -> Optional[str]:
    """The first PMID in an element's first bytes, or None."""
    found = _PMID.search(head)
    return found.group(1).decode("utf8", errors="replace") if found else None


def _text(element: Optional[ElementTree.Element]) -> str:
    """An element's text with its inline markup's text, whitespace runs as one space."""
    if element is None:
        return ""
    return " ".join("".join(element.itertext()).split())


def parse_pubmed_chunk(path: str, chunk: Chunk, where: Dict[str, Any]) -> Record:
    """Turn one element of a PubMed XML file into a document, a skipped
    record (`DeleteCitation`) or an error.

    path (str): The file, for the records.
    chunk (Chunk): The element's bytes (never None here).
    where (Dict[str, Any]): The record's index, line and byte.
    RETURNS (Record): The record.
    """
    assert chunk.data is not None
    doc_id = pmid_in(chunk.data[:4096])
    try:
        element = ElementTree.fromstring(chunk.data)
    except ElementTree.ParseError as err:
        reason = f"invalid XML in a PubMed article: {err}; expected an element of NLM's PubMed DTD"
        return InputError(path, reason, id=doc_id, **where)
    if element.tag == "DeleteCitation":
        deleted = [_text(pmid) for pmid in element.iter("PMID")]
        return InputSkipped(path, f"DeleteCitation of {len(deleted)} PMID(s)", deleted=deleted, **where)
    citation = element.find("MedlineCitation") if element.tag == "PubmedArticle" else element.find("BookDocument")
    if citation is None:
        return InputError(path, f"<{element.tag}> without <MedlineCitation> or <BookDocument>", id=doc_id, **where)
    pmid = _text(citation.find("PMID")) or doc_id
    if not pmid:
        return InputError(path, f"<{element.tag}> without a PMID", **where)
    article = citation.find("Article") if element.tag == "PubmedArticle" else citation
    title = _text(article.find("ArticleTitle")) if article is not None else ""
    if not title and article is not None:
        title = _text(article.find("VernacularTitle"))
    sections: List[str] = []
    if article is not None:
        sections = [text for text in map(_text, article.findall("Abstract/AbstractText")) if text]
    if not title and not sections:
        return InputError(path, "empty text (no ArticleTitle and no AbstractText)", id=pmid, **where)
    passages: List[Passage] = []
    offset = 0
    for text in [title, *sections] if title else sections:
        passages.append(Passage(offset, text))
        offset += len(text) + 1
    abstract = " ".join(sections) if sections else None
    if not title:
        # Offsets into title + " " + abstract, as PubTator counts them, with an empty title.
        passages = [Passage(p.offset + 1, p.text) for p in passages]
    return InputDocument(pmid, passages, title=title, abstract=abstract, **where)
