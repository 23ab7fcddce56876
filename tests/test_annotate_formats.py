"""The input and output formats of `spacy fastbioner annotate`: every format
read (plain and .gz) and written, BioC through the `bioc` package both ways,
and each bad-input case turned into an error record with its place."""

import gzip
import json
from pathlib import Path
from typing import List

import numpy
import pytest

from spacy_fastbioner.annotate.confidence import Entity, entity_confidence
from spacy_fastbioner.annotate.formats import (
    InputDocument,
    InputError,
    InputSource,
    Passage,
    count_records,
    detect_format,
    read_collection_info,
    read_records,
    xml_chunks,
)
from spacy_fastbioner.annotate.writers import (
    concept_url,
    render_bioc,
    render_html,
    render_jsonl,
    render_pubtator,
)

bioc = pytest.importorskip("bioc")
from bioc import biocjson, biocxml  # noqa: E402  (after the skip: bioc is optional)

TITLE = "Aspirin and breast cancer."
ABSTRACT = "Lithium carbonate caused diabetes."
TEXT = f"{TITLE} {ABSTRACT}"


def read(path: Path, fmt: str, **kwargs) -> List:
    return list(read_records(InputSource(str(path), fmt, **kwargs)))


def test_text_one_document_per_line_and_errors(tmp_path: Path) -> None:
    path = tmp_path / "in.txt"
    path.write_bytes(b"first text\n\n  \nbad \xff byte\nlast text")
    records = read(path, "text")
    assert [type(r).__name__ for r in records] == [
        "InputDocument",
        "InputError",
        "InputError",
        "InputError",
        "InputDocument",
    ]
    assert records[0].id == "1" and records[0].text == "first text" and records[4].text == "last text"
    assert (records[1].line, records[1].reason) == (2, "empty text")
    assert records[3].line == 4 and records[3].byte == 15 and "not UTF-8" in records[3].reason
    # A record can be read again from its byte offset.
    again = list(read_records(InputSource(str(path), "text"), start_byte=records[3].byte, start_index=3))
    assert [r.index for r in again] == [3, 4] and again[1].text == "last text"


def test_jsonl_fields_and_errors(tmp_path: Path) -> None:
    path = tmp_path / "in.jsonl.gz"
    lines = [
        json.dumps({"meta": {"pmid": 7}, "title": TITLE, "abstract": ABSTRACT}),
        '{"meta": {"pmid": 8}, "title": "broken',
        json.dumps({"meta": {"pmid": 9}, "title": "", "abstract": " "}),
        json.dumps({"meta": {"pmid": 10}, "title": 5}),
        json.dumps([1, 2]),
        json.dumps({"title": "No id here."}),
    ]
    with gzip.open(path, "wt", encoding="utf8") as file_:
        file_.write("\n".join(lines) + "\n")
    records = read(path, "jsonl", id_field="meta.pmid", text_fields=("title", "abstract"))
    assert len(records) == 6
    assert isinstance(records[0], InputDocument) and records[0].id == "7" and records[0].text == TEXT
    assert isinstance(records[1], InputError) and "broken JSON" in records[1].reason and records[1].line == 2
    assert records[2].reason == "empty text" and records[2].id == "9"
    assert "expected a string in the text field 'title'" in records[3].reason
    assert "expected a JSON object" in records[4].reason
    assert records[5].id == "6" and records[5].text == "No id here."


def pubtator_text() -> str:
    start = TEXT.index("breast cancer")
    return (
        f"1|t|{TITLE}\n1|a|{ABSTRACT}\n1\t{start}\t{start + 13}\tbreast cancer\tDisease\tD001943\n"
        f"1\tCID\tD1\tD2\n\n"
        f"2|t|{TITLE}\n2|a|{ABSTRACT}\n2\t0\t999\tAspirin\tChemical\n\n"
        f"3|t|Only a title.\n\n"
    )


def test_pubtator_keeps_annotations_apart_and_checks_offsets(tmp_path: Path) -> None:
    path = tmp_path / "in.txt"
    path.write_text(pubtator_text(), encoding="utf8")
    assert detect_format(path) == "pubtator"
    records = read(path, "pubtator")
    doc, bad, title_only = records
    assert doc.id == "1" and doc.text == TEXT and (doc.title, doc.abstract) == (TITLE, ABSTRACT)
    assert doc.annotations[0] == {
        "start": 12,
        "end": 25,
        "text": "breast cancer",
        "label": "Disease",
        "concept": "D001943",
    }
    assert doc.annotations[1] == {"relation": ["CID", "D1", "D2"]}
    assert isinstance(bad, InputError) and bad.id == "2" and bad.line == 6
    assert "line 8: offsets 0-999 outside the text of 2" in bad.reason
    assert title_only.text == "Only a title." and title_only.abstract is None
    # Shards start mid-file with the right line numbers.
    n, starts = count_records(InputSource(str(path), "pubtator"), 2)
    assert n == 3 and starts[1][0] == 2 and starts[1][2] == 10
    tail = list(
        read_records(
            InputSource(str(path), "pubtator"), start_byte=starts[1][1], start_index=2, start_line=starts[1][2]
        )
    )
    assert [(r.index, r.line, r.id) for r in tail] == [(2, 10, "3")]


def bioc_collection(n: int = 2):
    collection = bioc.BioCCollection()
    collection.source, collection.date, collection.key = "PubMed", "2024-01-01", "key.txt"
    collection.infons["project"] = "test"
    for i in range(n):
        document = bioc.BioCDocument()
        document.id = f"D{i}"
        for offset, text in ((0, TITLE), (len(TITLE) + 1, ABSTRACT)):
            passage = bioc.BioCPassage()
            passage.offset, passage.text = offset, text
            document.add_passage(passage)
        ann = bioc.BioCAnnotation()
        ann.id, ann.text = "A1", "Aspirin"
        ann.infons["type"] = "Chemical"
        ann.add_location(bioc.BioCLocation(0, 7))
        document.passages[0].add_annotation(ann)
        collection.add_document(document)
    return collection


def test_bioc_xml_documents_are_parsed_one_by_one(tmp_path: Path) -> None:
    xml = biocxml.dumps(bioc_collection(3))
    first, second = xml.index("<document>"), xml.index("<document>", xml.index("</document>"))
    broken = xml[:second] + xml[second:].replace("<passage>", "<passage><offset>", 1)
    path = tmp_path / "in.xml.gz"
    with gzip.open(path, "wt", encoding="utf8") as file_:
        file_.write(broken)
    records = read(path, "bioc-xml")
    assert [type(r).__name__ for r in records] == ["InputDocument", "InputError", "InputDocument"]
    assert records[0].id == "D0" and records[0].text == TEXT
    assert [(p.offset, p.text) for p in records[0].passages] == [(0, TITLE), (len(TITLE) + 1, ABSTRACT)]
    assert records[0].annotations[0]["locations"] == [[0, 7]] and records[0].annotations[0]["label"] == "Chemical"
    assert records[1].id == "D1" and "invalid XML document" in records[1].reason
    assert records[1].byte == len(broken[:second].encode("utf8")) and records[0].byte == first
    info = read_collection_info(InputSource(str(path), "bioc-xml"))
    assert (info.source, info.key, info.infons) == ("PubMed", "key.txt", {"project": "test"})


def test_xml_chunks_survive_block_boundaries() -> None:
    import io

    data = (
        b"<collection><source/>"
        + b"".join(b"<document><id>%d</id></document>" % i for i in range(50))
        + b"</collection>"
    )
    chunks = list(xml_chunks(io.BytesIO(data), block=7))
    assert chunks[0] == (0, b"<collection><source/>")
    assert [c for _, c in chunks[1:]] == [b"<document><id>%d</id></document>" % i for i in range(50)]
    assert all(data[offset : offset + len(chunk)] == chunk for offset, chunk in chunks)


def test_bioc_json_documents_and_errors(tmp_path: Path) -> None:
    obj = json.loads(biocjson.dumps(bioc_collection(3)))
    del obj["documents"][1]["passages"]
    obj["documents"].append({**obj["documents"][0], "id": "E", "passages": []})
    path = tmp_path / "in.json"
    path.write_text(json.dumps(obj), encoding="utf8")
    records = read(path, "bioc-json")
    assert [r.id for r in records] == ["D0", "D1", "D2", "E"]
    assert isinstance(records[1], InputError) and "invalid BioC JSON document 1" in records[1].reason
    assert records[3].reason.startswith("empty text") and records[2].text == TEXT
    (tmp_path / "bad.json").write_text('{"documents": [', encoding="utf8")
    (bad,) = read(tmp_path / "bad.json", "bioc-json")
    assert "broken JSON" in bad.reason


def test_detect_format(tmp_path: Path) -> None:
    for name, fmt in (
        ("a.jsonl", "jsonl"),
        ("a.ndjson.gz", "jsonl"),
        ("a.xml", "bioc-xml"),
        ("a.BioC.json", "bioc-json"),
        ("a.pubtator", "pubtator"),
    ):
        assert detect_format(tmp_path / name) == fmt
    (tmp_path / "plain.txt").write_text("\nSome text|with a bar.\n", encoding="utf8")
    assert detect_format(tmp_path / "plain.txt") == "text"


def annotated_doc() -> InputDocument:
    return InputDocument(
        "1",
        [Passage(0, TEXT)],
        title=TITLE,
        abstract=ABSTRACT,
        annotations=[{"start": 0, "end": 7, "text": "Aspirin", "label": "Chemical"}],
    )


ENTITIES = [Entity(12, 25, "Disease", 0.91234), Entity(27, 44, "Chemical", None)]
# As a pipeline with a linker gives them: an identifier, and a NIL ("") with its score.
LINKED = [Entity(12, 25, "Disease", 0.91234, "D001943", 0.87654), Entity(27, 44, "Chemical", None, "", 0.12)]


def test_jsonl_and_pubtator_output_round_trip(tmp_path: Path) -> None:
    doc = annotated_doc()
    record = json.loads(render_jsonl([(doc, ENTITIES)]))
    assert record["entities"] == [
        {"start": 12, "end": 25, "label": "Disease", "text": "breast cancer", "confidence": 0.9123},
        {"start": 27, "end": 44, "label": "Chemical", "text": "Lithium carbonate", "confidence": None},
    ]
    assert record["annotations"] == doc.annotations
    path = tmp_path / "out.pubtator"
    path.write_text(render_pubtator([(doc, ENTITIES)]), encoding="utf8")
    (back,) = read(path, "pubtator")
    assert back.text == TEXT
    assert [(a["start"], a["end"], a["label"], a["text"]) for a in back.annotations] == [
        (e.start, e.end, e.label, TEXT[e.start : e.end]) for e in ENTITIES
    ]
    # A text document becomes a title with an empty abstract: offsets still hold.
    line = InputDocument("5", [Passage(0, "Multi\nline aspirin")])
    path.write_text(render_pubtator([(line, [Entity(11, 18, "Chemical", 0.5)])]), encoding="utf8")
    (back,) = read(path, "pubtator")
    assert back.annotations[0]["text"] == "aspirin" and back.text[11:18] == "aspirin"


def test_bioc_output_round_trips_through_bioc(tmp_path: Path) -> None:
    path = tmp_path / "in.xml"
    path.write_text(biocxml.dumps(bioc_collection(1)), encoding="utf8")
    (doc,) = read(path, "bioc-xml")
    info = read_collection_info(InputSource(str(path), "bioc-xml"))
    xml = render_bioc([(doc, ENTITIES)], info)
    collection = biocxml.loads(xml)
    assert (collection.source, collection.infons) == ("PubMed", {"project": "test"})
    (document,) = collection.documents
    title, abstract = document.passages
    assert [a.id for a in title.annotations] == ["A1", "fastbioner-0"]  # the input's annotation is kept
    predicted = [a for p in document.passages for a in p.annotations if a.infons.get("annotator")]
    assert [(a.total_span.offset, a.total_span.end, a.infons["type"], a.text) for a in predicted] == [
        (e.start, e.end, e.label, TEXT[e.start : e.end]) for e in ENTITIES
    ]
    assert predicted[0].infons["confidence"] == "0.9123" and "confidence" not in predicted[1].infons
    assert abstract.annotations[0].text == "Lithium carbonate"
    # Non-BioC input: new documents, title and abstract passages.
    collection = biocxml.loads(render_bioc([(annotated_doc(), ENTITIES)]))
    assert [p.offset for p in collection.documents[0].passages] == [0, len(TITLE) + 1]


def test_html_page_shows_entities() -> None:
    page = render_html(annotated_doc(), ENTITIES)
    assert "<html" in page and "breast cancer" in page and "Disease" in page and "0.91" in page


def test_identifiers_in_every_output_format(tmp_path: Path) -> None:
    doc = annotated_doc()
    record = json.loads(render_jsonl([(doc, LINKED)]))
    assert [(e["id"], e["id_score"]) for e in record["entities"]] == [("D001943", 0.8765), (None, 0.12)]
    # Without a linker the keys are absent, not null.
    assert "id" not in json.loads(render_jsonl([(doc, ENTITIES)]))["entities"][0]
    pubtator = render_pubtator([(doc, LINKED)])
    assert pubtator.splitlines()[2:4] == [
        "1\t12\t25\tbreast cancer\tDisease\tD001943",
        "1\t27\t44\tLithium carbonate\tChemical\t-1",
    ]
    path = tmp_path / "linked.pubtator"
    path.write_text(pubtator, encoding="utf8")
    (back,) = read(path, "pubtator")
    assert [a.get("concept") for a in back.annotations] == ["D001943", "-1"]
    assert all(len(line.split("\t")) == 5 for line in render_pubtator([(doc, ENTITIES)]).splitlines()[2:4])
    collection = biocxml.loads(render_bioc([(doc, LINKED)]))
    predicted = [a for p in collection.documents[0].passages for a in p.annotations]
    assert predicted[0].infons["identifier"] == "D001943" and predicted[0].infons["identifier_score"] == "0.8765"
    assert "identifier" not in predicted[1].infons and predicted[1].infons["identifier_score"] == "0.1200"
    page = render_html(doc, LINKED)
    assert "https://meshb.nlm.nih.gov/record/ui?ui=D001943" in page and "NIL" in page


def test_concept_urls() -> None:
    assert concept_url("MESH:D003920") == "https://meshb.nlm.nih.gov/record/ui?ui=D003920"
    assert concept_url("C012345") == "https://meshb.nlm.nih.gov/record/ui?ui=C012345"
    assert concept_url("OMIM:114480|D010051") == "https://omim.org/entry/114480"
    assert concept_url("CHEBI:15365") == "#" and concept_url('D1"><script>') == "#"


def test_entity_confidence_is_the_mean_probability_of_the_decoded_tags() -> None:
    probs = numpy.asarray([[0.9, 0.1, 0.0], [0.2, 0.7, 0.1], [0.1, 0.3, 0.6]])
    assert entity_confidence(probs, 1, 3, [1, 2]) == pytest.approx((0.7 + 0.6) / 2)
    assert entity_confidence(probs, 0, 1, [0]) == pytest.approx(0.9)
