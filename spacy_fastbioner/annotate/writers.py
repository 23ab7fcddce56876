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
import re
from typing import Any, Dict, List, Optional, Sequence, Tuple

from .confidence import Entity
from .formats import InputDocument
from .ids import unsafe_id_reason

OUTPUT_FORMATS = ("jsonl", "pubtator", "bioc")
EXTENSIONS = {"jsonl": ".jsonl", "pubtator": ".pubtator", "bioc": ".bioc.xml", "errors": ".errors.jsonl"}
ANNOTATOR = "spacy-fastbioner"
NIL_PUBTATOR = "-1"
Annotated = Tuple[InputDocument, List[Entity]]


def entity_dicts(doc: InputDocument, entities: Sequence[Entity], text: Optional[str] = None) -> List[Dict[str, Any]]:
    """The JSON form of a document's entities.

    doc (InputDocument): The document.
    entities (Sequence[Entity]): Its entities, document offsets.
    text (Optional[str]): `doc.text`, when the caller has it already.
    RETURNS (List[Dict[str, Any]]): start, end, label, text, confidence
        (4 decimals; None where the pipeline gives none); with a linker, also
        `id` (the concept identifier, None for NIL) and `id_score`.
    """
    text = doc.text if text is None else text
    dicts = []
    for ent in entities:
        record: Dict[str, Any] = {
            "start": ent.start,
            "end": ent.end,
            "label": ent.label,
            "text": text[ent.start : ent.end],
            "confidence": None if ent.confidence is None else round(ent.confidence, 4),
        }
        if ent.kb_id is not None:
            record["id"] = ent.kb_id or None
            record["id_score"] = None if ent.kb_score is None else round(ent.kb_score, 4)
        dicts.append(record)
    return dicts


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
    entity, 'id<TAB>start<TAB>end<TAB>text<TAB>label', plus the concept
    identifier when the pipeline links ("-1" for NIL, as BC5CDR writes an
    unknown concept). A document that was not
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
        lines += [_pubtator_line(doc.id, text, ent) for ent in entities]
        blocks.append("\n".join(lines) + "\n\n")
    return "".join(blocks)


def _pubtator_line(doc_id: str, text: str, ent: Entity) -> str:
    line = f"{doc_id}\t{ent.start}\t{ent.end}\t{_one_line(text[ent.start : ent.end])}\t{ent.label}"
    if ent.kb_id is not None:
        line += f"\t{_one_line(ent.kb_id) or NIL_PUBTATOR}"
    return line


def render_bioc(annotated: Sequence[Annotated], collection: Any = None) -> str:
    """A BioC XML collection (through `bioc`): the input's documents with
    their passages and annotations, or new documents for other inputs, plus an
    annotation per predicted entity (infons `type`, `annotator`,
    `confidence`; with a linker, `identifier` and `identifier_score`, no
    `identifier` for NIL) in the passage where it starts.

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
        for k, ent in enumerate(entities):
            ann = bioc.BioCAnnotation()
            ann.id = f"fastbioner-{k}"
            ann.infons["type"] = ent.label
            ann.infons["annotator"] = ANNOTATOR
            if ent.confidence is not None:
                ann.infons["confidence"] = f"{ent.confidence:.4f}"
            if ent.kb_id:
                ann.infons["identifier"] = ent.kb_id
            if ent.kb_id is not None and ent.kb_score is not None:
                ann.infons["identifier_score"] = f"{ent.kb_score:.4f}"
            ann.add_location(bioc.BioCLocation(ent.start, ent.end - ent.start))
            ann.text = text[ent.start : ent.end]
            home = [p for p in passages if p.offset <= ent.start] or passages
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
    """A displaCy page of a document and its entities. Where displaCy shows a
    knowledge-base id, each entity shows its concept identifier, linked to
    its MeSH or OMIM page, when the pipeline links; else its confidence.
    The id is escaped here: displaCy puts the title into the page as it is."""
    from spacy import displacy

    ents = [{"start": ent.start, "end": ent.end, "label": ent.label, **_html_kb(ent)} for ent in entities]
    return displacy.render(
        {"text": doc.text, "ents": ents, "title": html.escape(doc.id)},
        style="ent",
        manual=True,
        page=True,
        jupyter=False,
    )


def concept_url(identifier: str) -> str:
    """The public page of a MeSH ("D003920", "MESH:C012345") or OMIM ("OMIM:114480") identifier,
    "#" for others. A composite's identifiers ("D001943|D010051") link to the first."""
    first = identifier.split("|")[0].split("+")[0].strip()
    prefix, _, local = first.rpartition(":")
    if prefix.upper() == "OMIM" and local.isdigit():
        return f"https://omim.org/entry/{local}"
    if prefix.upper() in ("", "MESH") and re.fullmatch(r"[CD]\d{6,9}", local):
        return f"https://meshb.nlm.nih.gov/record/ui?ui={local}"
    return "#"


def _html_kb(ent: Entity) -> Dict[str, str]:
    if ent.kb_id:
        return {"kb_id": html.escape(ent.kb_id), "kb_url": concept_url(ent.kb_id)}
    if ent.kb_id is not None:
        return {"kb_id": "NIL", "kb_url": "#"}
    if ent.confidence is not None:
        return {"kb_id": f"{ent.confidence:.2f}", "kb_url": "#"}
    return {}
