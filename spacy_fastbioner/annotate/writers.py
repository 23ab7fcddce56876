"""Output formats of `spacy fastbioner annotate`: JSONL, PubTator and BioC XML,
and displaCy pages. Offsets are characters of the original text: of the
JSONL text field or the plain-text line, of PubTator's title + " " + abstract,
of the BioC document (passage offsets included).

Each writer renders a whole shard to a string, which `shards.py` writes
atomically.
"""

import copy
import html
import json
from typing import Any, Dict, List, Optional, Sequence, Tuple

from .confidence import Entity
from .formats import InputDocument
from .ids import unsafe_id_reason

OUTPUT_FORMATS = ("jsonl", "pubtator", "bioc")
EXTENSIONS = {"jsonl": ".jsonl", "pubtator": ".pubtator", "bioc": ".bioc.xml", "errors": ".errors.jsonl"}
ANNOTATOR = "spacy-fastbioner"
Annotated = Tuple[InputDocument, List[Entity]]


def entity_dicts(doc: InputDocument, entities: Sequence[Entity], text: Optional[str] = None) -> List[Dict[str, Any]]:
    """The JSON form of a document's entities.

    doc (InputDocument): The document.
    entities (Sequence[Entity]): Its entities, document offsets.
    text (Optional[str]): `doc.text`, when the caller has it already.
    RETURNS (List[Dict[str, Any]]): start, end, label, text, confidence
        (4 decimals; None where the pipeline gives none).
    """
    text = doc.text if text is None else text
    return [
        {
            "start": start,
            "end": end,
            "label": label,
            "text": text[start:end],
            "confidence": None if conf is None else round(conf, 4),
        }
        for start, end, label, conf in entities
    ]


def render_jsonl(annotated: Sequence[Annotated]) -> str:
    """One JSON object a line: id, entities, and the input's own annotations."""
    lines = []
    for doc, entities in annotated:
        record = {"id": doc.id, "entities": entity_dicts(doc, entities), "annotations": doc.annotations}
        lines.append(json.dumps(record, ensure_ascii=False) + "\n")
    return "".join(lines)


def _one_line(text: str) -> str:
    # Same length, so that offsets still hold.
    return text.replace("\r", " ").replace("\n", " ")


def render_pubtator(annotated: Sequence[Annotated]) -> str:
    """PubTator: 'id|t|title', 'id|a|abstract' and one line per predicted
    entity, 'id<TAB>start<TAB>end<TAB>text<TAB>label'. A document that was not
    PubTator has its whole text as the title and an empty abstract, so that the
    offsets into title + " " + abstract are offsets into its text."""
    blocks = []
    for doc, entities in annotated:
        if unsafe_id_reason(doc.id, ("pubtator",)):  # `process_shard` refuses these ids before
            raise ValueError(
                f"cannot write the id {doc.id[:80]!r} in PubTator: {unsafe_id_reason(doc.id, ('pubtator',))}"
            )
        if doc.title is not None:
            title, abstract = doc.title, doc.abstract or ""
            text = doc.text
        else:
            text = doc.text
            title, abstract = text, ""
        lines = [f"{doc.id}|t|{_one_line(title)}", f"{doc.id}|a|{_one_line(abstract)}"]
        lines += [f"{doc.id}\t{s}\t{e}\t{_one_line(text[s:e])}\t{label}" for s, e, label, _ in entities]
        blocks.append("\n".join(lines) + "\n\n")
    return "".join(blocks)


def render_bioc(annotated: Sequence[Annotated], collection: Any = None) -> str:
    """A BioC XML collection (through `bioc`): the input's documents with
    their passages and annotations, or new documents for other inputs, plus an
    annotation per predicted entity (infons `type`, `annotator`,
    `confidence`) in the passage where it starts.

    annotated (Sequence[Annotated]): The documents and their entities.
    collection (Any): The input's `bioc.BioCCollection` (source, date, key,
        infons), or None.
    RETURNS (str): The XML.
    """
    import bioc
    from bioc import biocxml

    out = bioc.BioCCollection()
    if collection is not None:
        out.source, out.date, out.key = collection.source, collection.date, collection.key
        out.infons = dict(collection.infons)
    out.source = out.source or ANNOTATOR
    for doc, entities in annotated:
        document = copy.deepcopy(doc.bioc) if doc.bioc is not None else _bioc_document(doc)
        text = doc.text
        passages = sorted(document.passages, key=lambda p: p.offset)
        for k, (start, end, label, conf) in enumerate(entities):
            ann = bioc.BioCAnnotation()
            ann.id = f"fastbioner-{k}"
            ann.infons["type"] = label
            ann.infons["annotator"] = ANNOTATOR
            if conf is not None:
                ann.infons["confidence"] = f"{conf:.4f}"
            ann.add_location(bioc.BioCLocation(start, end - start))
            ann.text = text[start:end]
            home = [p for p in passages if p.offset <= start] or passages
            home[-1].add_annotation(ann)
        out.add_document(document)
    return biocxml.dumps(out)


def _bioc_document(doc: InputDocument) -> Any:
    import bioc

    document = bioc.BioCDocument()
    document.id = doc.id
    if doc.title is not None:
        parts = [("title", 0, doc.title)]
        if doc.abstract is not None:
            parts.append(("abstract", len(doc.title) + 1, doc.abstract))
    else:
        parts = [("text", p.offset, p.text) for p in doc.passages]
    for kind, offset, text in parts:
        passage = bioc.BioCPassage()
        passage.offset, passage.text = offset, text
        passage.infons["type"] = kind
        document.add_passage(passage)
    return document


def render(fmt: str, annotated: Sequence[Annotated], collection: Any = None) -> str:
    """Render a shard in one of OUTPUT_FORMATS."""
    if fmt == "jsonl":
        return render_jsonl(annotated)
    if fmt == "pubtator":
        return render_pubtator(annotated)
    if fmt == "bioc":
        return render_bioc(annotated, collection)
    raise ValueError(f"unknown output format {fmt!r}: expected one of {', '.join(OUTPUT_FORMATS)}")


def render_html(doc: InputDocument, entities: Sequence[Entity]) -> str:
    """A displaCy page of a document and its entities, each followed by its
    confidence (shown where displaCy shows a knowledge-base id). The id is
    escaped here: displaCy puts the title into the page as it is."""
    from spacy import displacy

    ents = [
        {"start": s, "end": e, "label": label, **({} if c is None else {"kb_id": f"{c:.2f}", "kb_url": "#"})}
        for s, e, label, c in entities
    ]
    return displacy.render(
        {"text": doc.text, "ents": ents, "title": html.escape(doc.id)},
        style="ent",
        manual=True,
        page=True,
        jupyter=False,
    )
