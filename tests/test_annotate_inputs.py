"""`annotate` on real collections' inputs (issue 27, items 1-4): PubMed XML,
a truncated .gz, reading in one pass, and the bound on a document's size.
A rule-based pipeline keeps these fast; the transformer's side is in
test_annotate.py and test_annotate_workers.py."""

import gzip
import json
import shutil
from pathlib import Path
from typing import Dict, List

import pytest
import spacy

from spacy_fastbioner.annotate import AnnotateError, annotate
from spacy_fastbioner.annotate import formats as formats_module
from spacy_fastbioner.annotate.chunks import read_line, split_elements
from spacy_fastbioner.annotate.formats import (
    InputDocument,
    InputError,
    InputSkipped,
    InputSource,
    count_records,
    detect_format,
    read_collection_info,
    read_records,
)
from spacy_fastbioner.annotate.local import ShardReader
from spacy_fastbioner.annotate.shards import MANIFEST, SHARDS_DIR, Shard

bioc = pytest.importorskip("bioc")
from bioc import biocjson  # noqa: E402  (after the skip: bioc is optional)

FIXTURES = Path(__file__).parent / "fixtures" / "pubmed"
BASELINE = FIXTURES / "pubmed25n0001.xml"
UPDATE = FIXTURES / "pubmed25n1300.xml"


@pytest.fixture(scope="module")
def ruler(tmp_path_factory) -> Path:
    """A rule-based pipeline with the BioTokenizer: fast, and its entities are known."""
    nlp = spacy.blank("en", config={"nlp": {"tokenizer": {"@tokenizers": "spacy_fastbioner.BioTokenizer.v1"}}})
    patterns = [{"label": "Chemical", "pattern": w} for w in ("aspirin", "Aspirin", "tamoxifen", "Ibuprofen")]
    nlp.add_pipe("entity_ruler").add_patterns(patterns)  # type: ignore[attr-defined]
    path = tmp_path_factory.mktemp("ruler") / "model"
    nlp.to_disk(path)
    return path


def read_jsonl(path: Path) -> List[Dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf8").splitlines()]


def shard_records(folder: Path, fmt: str = "jsonl") -> List[Dict]:
    summary = json.loads((folder / "summary.json").read_text())
    return [r for name in summary["outputs"][fmt] for r in read_jsonl(folder / SHARDS_DIR / name)]


def outputs(folder: Path) -> Dict[str, bytes]:
    files = {p.name: p.read_bytes() for p in (folder / SHARDS_DIR).iterdir()}
    files.update({name: (folder / name).read_bytes() for name in ("errors.jsonl", "summary.json")})
    return files


# Item 1: PubMed XML.


def test_pubmed_xml_is_read_article_by_article(tmp_path: Path) -> None:
    assert detect_format(BASELINE) == detect_format(UPDATE) == "pubmed-xml"
    gz = tmp_path / "pubmed25n0001.xml.gz"
    gz.write_bytes(gzip.compress(BASELINE.read_bytes()))
    assert detect_format(gz) == "pubmed-xml"
    for path in (BASELINE, gz):
        first, title_only, unicode = read_records(InputSource(str(path), "pubmed-xml"))
        assert isinstance(first, InputDocument) and first.id == "10000001"
        title = "Lithium carbonate and Ca2+ signalling in Mus musculus."
        sections = [
            "Aspirin reduces β-amyloid in breast cancer.",
            "We measured CO2 and tamoxifen levels in 12 mice.",
            "Diabetes fell by 50 % (p<0.05).",
        ]
        # Markup keeps its text; sections in file order; labels are not in the text.
        assert (first.title, first.abstract) == (title, " ".join(sections))
        assert first.text == f"{title} {' '.join(sections)}" and "BACKGROUND" not in first.text
        assert [p.text for p in first.passages] == [title, *sections]
        assert all(first.text[p.offset : p.offset + len(p.text)] == p.text for p in first.passages)
        assert first.byte == BASELINE.read_bytes().index(b"<PubmedArticle>")
        # No abstract: the title alone.
        assert (title_only.id, title_only.text, title_only.abstract) == (
            "10000002",
            "Cisplatin nephrotoxicity: a title without an abstract.",
            None,
        )
        assert unicode.text == "Ibuprofen in Müller cells. Ibuprofen caused no hepatitis in Zürich."


def test_pubmed_update_file_delete_citation_and_a_broken_article(tmp_path: Path) -> None:
    good, broken, deleted = read_records(InputSource(str(UPDATE), "pubmed-xml"))
    assert isinstance(good, InputDocument) and good.id == "10000004"
    assert isinstance(broken, InputError) and broken.id == "10000005" and "invalid XML" in broken.reason
    assert isinstance(deleted, InputSkipped) and deleted.deleted == ["9999998", "9999999"]


def test_annotate_pubmed_files(tmp_path: Path, ruler: Path) -> None:
    summary = annotate(
        str(ruler), [BASELINE, UPDATE], tmp_path / "out", shard_size=2, formats=("jsonl", "pubtator"), quiet=True
    )
    assert (summary["n_read"], summary["n_written"], summary["n_errors"], summary["n_skipped"]) == (6, 4, 1, 1)
    assert summary["n_deleted"] == 2
    records = shard_records(tmp_path / "out")
    assert [r["id"] for r in records] == ["10000001", "10000002", "10000003", "10000004"]
    assert [e["text"] for e in records[0]["entities"]] == ["Aspirin", "tamoxifen"]
    lines = [json.loads(line) for line in (tmp_path / "out" / MANIFEST).read_text().splitlines()[1:]]
    assert [line.get("deleted") for line in lines if line.get("deleted")] == [["9999998", "9999999"]]
    assert sum(line["n_skipped"] for line in lines) == 1
    # PubTator output: offsets into title + " " + abstract, as PubTator counts them.
    pubtator = (tmp_path / "out" / SHARDS_DIR / "00000-000000.pubtator").read_text(encoding="utf8")
    assert "10000001|t|Lithium carbonate and Ca2+ signalling in Mus musculus.\n" in pubtator


def test_xml_of_another_kind_is_an_error_naming_its_root(tmp_path: Path, ruler: Path) -> None:
    other = tmp_path / "pmc.xml"
    other.write_text('<?xml version="1.0"?>\n<!-- a comment -->\n<pmc-articleset><article/></pmc-articleset>\n')
    with pytest.raises(AnnotateError, match="root element <pmc-articleset>, expected <PubmedArticleSet>"):
        annotate(str(ruler), [other], tmp_path / "out", quiet=True)
    with pytest.raises(AnnotateError, match="--input-format bioc-xml, but the file is pubmed-xml"):
        annotate(str(ruler), [BASELINE], tmp_path / "out2", input_format="bioc-xml", quiet=True)


# Item 2: a truncated .gz.


def truncated_gz(path: Path, n: int = 10) -> Path:
    lines = "".join(
        json.dumps({"id": f"d{i}", "text": f"Patients took aspirin {i} times. " * 40}) + "\n" for i in range(n)
    )
    data = gzip.compress(lines.encode("utf8"))
    path.write_bytes(data[: int(len(data) * 0.7)])
    return path


def test_a_truncated_gz_error_is_never_the_first_document(tmp_path: Path, ruler: Path) -> None:
    path = truncated_gz(tmp_path / "cut.jsonl.gz")
    source = InputSource(str(path), "jsonl")
    records = list(read_records(source))
    error = records[-1]
    assert isinstance(error, InputError) and "cannot read the rest" in error.reason
    assert error.byte > 0 and error.byte == records[-2].byte + _line_size(records[-2])
    # Reading again from the error's byte gives the error again, not document 0.
    (again,) = read_records(source, start_byte=error.byte, start_index=error.index, start_line=error.line or 1)
    assert isinstance(again, InputError) and (again.index, again.byte) == (error.index, error.byte)
    n, starts = count_records(source, 1)
    assert n == len(records) and starts[-1] == (error.index, error.byte, error.line)
    # Through a run and a resume of the error's shard.
    out = tmp_path / "out"
    annotate(str(ruler), [path], out, shard_size=1, quiet=True)
    whole = outputs(out)
    manifest = (out / MANIFEST).read_text().splitlines(keepends=True)
    (out / MANIFEST).write_text("".join(manifest[:-1]))  # the error's shard is to do again
    annotate(str(ruler), [path], out, shard_size=1, quiet=True)
    assert outputs(out) == whole
    assert [r["id"] for r in shard_records(out)] == [r.id for r in records[:-1]]
    (written_error,) = read_jsonl(out / "errors.jsonl")
    assert written_error["byte"] == error.byte


def _line_size(record: InputDocument) -> int:
    return len(json.dumps({"id": record.id, "text": record.text}).encode("utf8")) + 1


# Item 3: one pass.


class CountingFile:
    """A file that counts the bytes read from it."""

    def __init__(self, path: Path, counter: List[int]) -> None:
        self.file, self.counter = open(path, "rb"), counter

    def read(self, n: int = -1) -> bytes:
        data = self.file.read(n)
        self.counter[0] += len(data)
        return data

    def __getattr__(self, name: str):
        return getattr(self.file, name)


def test_consecutive_shards_of_a_gz_decompress_it_once(tmp_path: Path, monkeypatch) -> None:
    path = tmp_path / "in.txt.gz"
    path.write_bytes(gzip.compress("".join(f"Text number {i} about aspirin.\n" for i in range(4000)).encode()))
    counter = [0]
    monkeypatch.setattr(
        formats_module, "open_input", lambda p: gzip.GzipFile(fileobj=CountingFile(Path(p), counter), mode="rb")
    )
    source = InputSource(str(path), "text")
    n, starts = count_records(source, 100)
    assert n == 4000 and counter[0] <= path.stat().st_size
    counter[0] = 0
    reader = ShardReader([source])
    shards = [Shard(f"s{k}", 0, i, min(i + 100, n), byte, line) for k, (i, byte, line) in enumerate(starts)]
    texts = [r.text for shard in shards for r in reader.read(shard)]
    reader.close()
    assert texts == [f"Text number {i} about aspirin." for i in range(4000)]
    # One pass over the compressed file, not one per shard (40 shards would read it about 20 times).
    assert counter[0] <= path.stat().st_size


def test_planning_does_not_parse_records(tmp_path: Path, monkeypatch) -> None:
    def no_parsing(*args, **kwargs):
        raise AssertionError("planning parsed a record")

    monkeypatch.setattr(formats_module, "_parse", no_parsing)
    data = UPDATE.read_bytes()
    starts = [(0, data.index(b"<PubmedArticle>"), 1), (2, data.index(b"<DeleteCitation>"), 1)]
    assert count_records(InputSource(str(UPDATE), "pubmed-xml"), 2) == (3, starts)


def test_element_search_resumes_where_it_stopped() -> None:
    """Cut in 7-byte blocks, every element is found once, at its offset."""
    import io
    import re

    data = (
        b"<PubmedArticleSet>"
        + b"".join(b"<PubmedArticle><PMID>%d</PMID></PubmedArticle>\n" % i for i in range(300))
        + b"</PubmedArticleSet>"
    )
    starts = re.compile(rb"<(PubmedArticle)[\s>]")
    chunks = list(split_elements(io.BytesIO(data), 0, starts, (b"</PubmedArticle>",), 1000, header=True, block=7))
    assert chunks[0].data == b"<PubmedArticleSet>" and len(chunks) == 301
    assert all(data[c.byte : c.byte + c.size] == c.data for c in chunks)


# Item 4: a bound on a document's size.


def test_a_document_over_the_bound_is_an_error_with_its_id_and_size(tmp_path: Path, ruler: Path) -> None:
    big = "Aspirin. " * 20000  # 180 kB
    path = tmp_path / "in.jsonl"
    path.write_text(
        "\n".join(json.dumps({"id": i, "text": t}) for i, t in ((1, "aspirin"), (2, big), (3, "Aspirin again."))) + "\n"
    )
    summary = annotate(str(ruler), [path], tmp_path / "out", quiet=True, max_doc_bytes=100_000)
    assert (summary["n_written"], summary["n_errors"]) == (2, 1)
    (error,) = read_jsonl(tmp_path / "out" / "errors.jsonl")
    size = len(json.dumps({"id": 2, "text": big})) + 1
    assert (error["id"], error["line"], error["size"]) == ("2", 2, size) and "over the bound of 100,000 bytes" in error[
        "reason"
    ]
    with pytest.raises(AnnotateError, match="Invalid max doc bytes"):
        annotate(str(ruler), [path], tmp_path / "out2", quiet=True, max_doc_bytes=0)


def test_a_huge_line_is_never_held_whole(tmp_path: Path) -> None:
    import io

    class Spy(io.BytesIO):
        largest = 0

        def readline(self, size: int = -1) -> bytes:
            line = super().readline(size)
            Spy.largest = max(Spy.largest, len(line))
            return line

    data, size, head = read_line(Spy(b"x" * 5_000_000 + b"\nnext\n"), 1000)
    assert (data, size, len(head)) == (None, 5_000_001, 1001) and Spy.largest <= 1 << 20


@pytest.mark.parametrize("fmt", ["pubtator", "pubmed-xml", "bioc-xml", "bioc-json"])
def test_the_bound_holds_in_every_format(tmp_path: Path, fmt: str) -> None:
    big = "Aspirin. " * 3000
    docs = [("1", "Small one."), ("2", big), ("3", "Small two.")]
    if fmt == "pubtator":
        text = "".join(f"{i}|t|{t}\n\n" for i, t in docs)
    elif fmt == "pubmed-xml":
        text = (
            "<PubmedArticleSet>"
            + "".join(
                f"<PubmedArticle><MedlineCitation><PMID>{i}</PMID><Article><ArticleTitle>{t}</ArticleTitle></Article>"
                "</MedlineCitation></PubmedArticle>"
                for i, t in docs
            )
            + "</PubmedArticleSet>"
        )
    else:
        collection = bioc.BioCCollection()
        for i, t in docs:
            document = bioc.BioCDocument()
            document.id = i
            passage = bioc.BioCPassage()
            passage.offset, passage.text = 0, t
            document.add_passage(passage)
            collection.add_document(document)
        if fmt == "bioc-xml":
            from bioc import biocxml

            text = biocxml.dumps(collection)
        else:
            obj = json.loads(biocjson.dumps(collection))
            text = json.dumps({"documents": obj.pop("documents"), **obj})  # documents before the other keys
    path = tmp_path / "in.data"
    path.write_text(text, encoding="utf8")
    records = list(read_records(InputSource(str(path), fmt), max_bytes=10_000))
    assert [r.id for r in records] == ["1", "2", "3"]
    assert isinstance(records[1], InputError) and records[1].size is not None and records[1].size > 27_000
    assert [r.text for r in records if isinstance(r, InputDocument)] == ["Small one.", "Small two."]
    # A shard that starts at the last record reads it alone.
    (last,) = read_records(
        InputSource(str(path), fmt), start_byte=records[2].byte, start_index=2, start_line=records[2].line or 1
    )
    assert last.id == "3" and last.text == "Small two."


def test_bioc_json_is_streamed_and_its_collection_read_apart(tmp_path: Path) -> None:
    collection = bioc.BioCCollection()
    collection.source, collection.key = "PubMed", "key.txt"
    collection.infons["project"] = "x"
    for i in range(50):
        document = bioc.BioCDocument()
        document.id = f"D{i}"
        passage = bioc.BioCPassage()
        passage.offset, passage.text = 0, f'Text "{i}" with [brackets] and {{braces}} \\ and aspirin.'
        document.add_passage(passage)
        collection.add_document(document)
    obj = json.loads(biocjson.dumps(collection))
    path = tmp_path / "in.json"
    path.write_text(json.dumps({"documents": obj.pop("documents"), **obj}, indent=1), encoding="utf8")
    assert not hasattr(formats_module, "_json_cache") and not hasattr(formats_module.bioc_input, "_json_cache")
    records = list(read_records(InputSource(str(path), "bioc-json")))
    assert [r.id for r in records] == [f"D{i}" for i in range(50)]
    assert records[7].text == 'Text "7" with [brackets] and {braces} \\ and aspirin.'
    info = read_collection_info(InputSource(str(path), "bioc-json"))
    assert (info.source, info.key, info.infons) == ("PubMed", "key.txt", {"project": "x"})


def test_gz_copy_of_a_fixture_gives_the_same_records(tmp_path: Path) -> None:
    gz = tmp_path / "pubmed25n1300.xml.gz"
    with open(UPDATE, "rb") as src, gzip.open(gz, "wb") as dst:
        shutil.copyfileobj(src, dst)
    plain = list(read_records(InputSource(str(UPDATE), "pubmed-xml")))
    packed = list(read_records(InputSource(str(gz), "pubmed-xml")))
    assert [(type(r).__name__, r.byte, getattr(r, "id", None)) for r in plain] == [
        (type(r).__name__, r.byte, getattr(r, "id", None)) for r in packed
    ]
