"""Tests for spacy_fastbioner.corpora.readers: tiny files in tmp_path, plus the real corpora when present."""

import random
import re
from pathlib import Path
from typing import List, Tuple

import pytest
import spacy
from spacy.language import Language
from spacy.training import Example
from spacy.util import fix_random_seed, registry
from thinc.api import Config

from spacy_fastbioner.corpora.readers import (
    CorpusError,
    PubTatorDocument,
    create_iob_reader,
    create_mixed_reader,
    create_plain_text_reader,
    create_pubtator_reader,
    read_pubtator,
)
from spacy_fastbioner.corpora.text import split_sentences

IOB = "BRCA1\tO\nbreast\tB-Disease\ncancer\tI-Disease\n.\tO\n\nNo\tO\nentity\tO\n\n"
TITLE = "Lithium toxicity in a newborn."
ABSTRACT = "A newborn had cardiac disease. Lithium carbonate may cause it. 3 infants had no ill-effects."
PUBTATOR = (
    f"\n1|t|{TITLE}\n1|a|{ABSTRACT}\n"
    "1\t0\t16\tLithium toxicity\tSpecificDisease\tD1\n"
    "1\t0\t7\tLithium\tChemical\tD2\n"
    "1\t45\t60\tcardiac disease\tDisease\tD3\n"
    "1\t62\t79\tLithium carbonate\tChemical\tD4\n"
    "1\tCID\tD4\tD3\n"
    f"\n2|t|Short.\n2|a|Nothing here.\n"
)


@pytest.fixture(scope="module")
def nlp() -> Language:
    return spacy.blank("en")


def write(tmp_path: Path, text: str, name: str = "corpus.txt", newline: str = "\n") -> Path:
    path = tmp_path / name
    path.write_bytes(text.replace("\n", newline).encode("utf8"))
    return path


def ents(eg: Example) -> List[Tuple[str, str]]:
    return [(e.text, e.label_) for e in eg.reference.ents]


# IOB2


@pytest.mark.parametrize("newline", ["\n", "\r\n"])
@pytest.mark.parametrize("tail", ["", "\n \t\n"])
def test_iob_reads_words_entities_and_explicit_o(tmp_path: Path, nlp: Language, newline: str, tail: str) -> None:
    text = IOB.rstrip("\n").replace("\n\n", "\n   \n") + tail  # whitespace-only separator, maybe no final blank
    egs = list(create_iob_reader(write(tmp_path, text, "c.tsv", newline))(nlp))
    assert [[t.text for t in eg.reference] for eg in egs] == [["BRCA1", "breast", "cancer", "."], ["No", "entity"]]
    assert ents(egs[0]) == [("breast cancer", "Disease")] and ents(egs[1]) == []
    for eg in egs:
        assert eg.reference.has_annotation("ENT_IOB") and not eg.predicted.has_annotation("ENT_IOB")
        assert eg.reference.text == eg.predicted.text and not eg.reference[-1].whitespace_
    assert [t.ent_iob_ for t in egs[1].reference] == ["O", "O"]


def test_iob_groups_sentences_and_sets_sentence_starts(tmp_path: Path, nlp: Language) -> None:
    reader = create_iob_reader(write(tmp_path, IOB * 2), sentences_per_doc=3)
    egs = list(reader(nlp))
    assert [len(eg.reference) for eg in egs] == [10, 2]
    assert [s.text for s in egs[0].reference.sents] == ["BRCA1 breast cancer .", "No entity", "BRCA1 breast cancer ."]
    assert ents(egs[0]) == [("breast cancer", "Disease")] * 2
    assert (reader.n_examples, reader.n_sentences) == (2, 4)


def test_iob_limit_and_seeded_shuffle(tmp_path: Path, nlp: Language) -> None:
    path = write(tmp_path, "".join(f"w{i}\tO\n\n" for i in range(20)))
    assert [eg.reference.text for eg in create_iob_reader(path, limit=3)(nlp)] == ["w0", "w1", "w2"]
    reader = create_iob_reader(path, shuffle=True)
    fix_random_seed(1)
    first = [eg.reference.text for eg in reader(nlp)]
    fix_random_seed(1)
    assert [eg.reference.text for eg in reader(nlp)] == first
    assert sorted(first) == sorted(f"w{i}" for i in range(20)) and first != [f"w{i}" for i in range(20)]


@pytest.mark.parametrize(
    "text,line,expected",
    [
        ("a\tO\nfoo bar\n", 2, r"expected 'token<TAB>tag', found 'foo bar' \(no tab\)"),
        ("a\tO\tX\n", 1, r"expected 'token<TAB>tag', found 'a\\tO\\tX' \(3 columns\)"),
        ("\tO\n", 1, r"expected 'token<TAB>tag', found '\\tO' \(empty token\)"),
        ("a\tO\n\nb\tX-Disease\n", 3, r"expected a tag 'O', 'B-<type>' or 'I-<type>', found 'X-Disease'"),
        ("a\tB-\n", 1, r"expected a tag .* found 'B-'"),
        ("a\tO\nb\tI-Disease\n", 2, r"'I-Disease' follows 'O'; expected 'B-Disease'.*repair=True"),
        ("a\tB-Chemical\nb\tI-Disease\n", 2, r"'I-Disease' follows 'B-Chemical'"),
        ("a\tO\n\nb\tI-Disease\n", 3, r"'I-Disease' follows the sentence start"),
    ],
)
def test_iob_errors_name_file_line_and_expectation(
    tmp_path: Path, nlp: Language, text: str, line: int, expected: str
) -> None:
    path = write(tmp_path, text, "bad.tsv")
    with pytest.raises(CorpusError, match=re.escape(f"{path}:{line}: ") + expected) as info:
        list(create_iob_reader(path)(nlp))
    assert (info.value.path, info.value.line) == (path, line)


def test_iob_repair(tmp_path: Path, nlp: Language, caplog: pytest.LogCaptureFixture) -> None:
    path = write(tmp_path, "I-start\tI-Disease\nx\tO\ny\tI-Disease\nz\tI-Disease\nc\tB-Chemical\nd\tI-Disease\n")
    reader = create_iob_reader(path, repair=True)
    with caplog.at_level("WARNING"):
        egs = list(reader(nlp))
    assert ents(egs[0]) == [("I-start", "Disease"), ("y z", "Disease"), ("c", "Chemical"), ("d", "Disease")]
    assert reader.n_repairs == 3 and "repaired 3 invalid I- tag(s)" in caplog.text


@pytest.mark.parametrize(
    "content,expected",
    [(b"", r"no sentences found"), (b"\n \n\r\n", r"no sentences found"), (None, r"file not found; expected")],
)
def test_iob_empty_or_missing_file(tmp_path: Path, nlp: Language, content: bytes, expected: str) -> None:
    path = tmp_path / "x.tsv"
    if content is not None:
        path.write_bytes(content)
        reader = create_iob_reader(path)
        with pytest.raises(CorpusError, match=re.escape(f"{path}: ") + expected):
            list(reader(nlp))
    else:
        with pytest.raises(CorpusError, match=re.escape(f"{path}: ") + expected):
            create_iob_reader(path)


def test_non_utf8_names_the_line(tmp_path: Path, nlp: Language) -> None:
    path = tmp_path / "latin1.tsv"
    path.write_bytes("a\tO\n\nna\u00efve\tO\n".encode("latin-1"))
    with pytest.raises(CorpusError, match=re.escape(f"{path}:3: invalid UTF-8 byte 0xef") + ".*expected UTF-8"):
        list(create_iob_reader(path)(nlp))
    with pytest.raises(CorpusError, match=re.escape(f"{path}:3:")):
        list(create_plain_text_reader(path)(nlp))


# PubTator


def test_read_pubtator(tmp_path: Path) -> None:
    docs = read_pubtator(write(tmp_path, PUBTATOR))
    assert [d.pmid for d in docs] == ["1", "2"]
    assert docs[0].text == TITLE + " " + ABSTRACT and docs[0].title_length == len(TITLE)
    assert docs[0].mentions == [
        (0, 16, "Lithium toxicity", "Disease"),
        (0, 7, "Lithium", "Chemical"),
        (45, 60, "cardiac disease", "Disease"),
        (62, 79, "Lithium carbonate", "Chemical"),
    ]
    assert docs[0].mention_lines == [4, 5, 6, 7] and docs[1].mentions == []
    assert isinstance(docs[1], PubTatorDocument) and docs[1].text == "Short. Nothing here."
    assert read_pubtator(write(tmp_path, PUBTATOR), {"Chemical": ""})[0].mentions[0][3] == "SpecificDisease"


def test_pubtator_reader_keeps_longest_and_counts(tmp_path: Path, nlp: Language) -> None:
    reader = create_pubtator_reader(write(tmp_path, PUBTATOR, newline="\r\n"))
    egs = list(reader(nlp))
    assert len(egs) == 2 and egs[0].predicted.text == TITLE + " " + ABSTRACT
    assert ents(egs[0]) == [
        ("Lithium toxicity", "Disease"),
        ("cardiac disease", "Disease"),
        ("Lithium carbonate", "Chemical"),
    ]
    assert ents(egs[1]) == [] and egs[1].reference.has_annotation("ENT_IOB")
    assert not egs[0].predicted.has_annotation("ENT_IOB")
    counts = (reader.n_docs, reader.n_mentions, reader.n_overlapping, reader.n_misaligned, reader.n_dropped)
    assert counts == (2, 4, 1, 0, 0)
    assert len(list(create_pubtator_reader(write(tmp_path, PUBTATOR), limit=1)(nlp))) == 1
    with pytest.raises(CorpusError, match=r":5: mention 'Lithium' overlaps a longer one"):
        list(create_pubtator_reader(write(tmp_path, PUBTATOR), strict=True)(nlp))


def test_pubtator_per_sentence(tmp_path: Path, nlp: Language) -> None:
    reader = create_pubtator_reader(write(tmp_path, PUBTATOR), per_sentence=True)
    egs = list(reader(nlp))
    assert [eg.reference.text for eg in egs] == [
        TITLE,
        "A newborn had cardiac disease.",
        "Lithium carbonate may cause it.",
        "3 infants had no ill-effects.",
        "Short.",
        "Nothing here.",
    ]
    assert [ents(eg) for eg in egs[:3]] == [
        [("Lithium toxicity", "Disease")],
        [("cardiac disease", "Disease")],
        [("Lithium carbonate", "Chemical")],
    ]
    assert reader.n_docs == 2 and reader.n_examples == 6


def test_pubtator_per_sentence_never_splits_a_mention(tmp_path: Path, nlp: Language) -> None:
    text = "1|t|Title\n1|a|We saw Fanconi anemia type A. Then nothing.\n1\t13\t40\tFanconi anemia type A. Then\tX\n"
    egs = list(create_pubtator_reader(write(tmp_path, text), per_sentence=True)(nlp))
    assert [eg.reference.text for eg in egs] == ["Title", "We saw Fanconi anemia type A. Then nothing."]
    assert ents(egs[1]) == [("Fanconi anemia type A. Then", "X")]


def test_pubtator_misaligned_spans(tmp_path: Path, nlp: Language) -> None:
    path = write(
        tmp_path, "1|t|Hydrochlorothiazide and Anti-HIV\n1|a|x\n1\t0\t5\tHydro\tChemical\n1\t29\t32\tHIV\tChemical\n"
    )
    expand = create_pubtator_reader(path)
    assert [ents(eg) for eg in expand(nlp)] == [[("Hydrochlorothiazide", "Chemical"), ("HIV", "Chemical")]]
    assert (expand.n_mentions, expand.n_misaligned, expand.n_dropped) == (2, 1, 0)
    for mode in ("strict", "contract"):
        reader = create_pubtator_reader(path, alignment_mode=mode)
        assert [ents(eg) for eg in reader(nlp)] == [[("HIV", "Chemical")]]
        assert (reader.n_misaligned, reader.n_dropped) == (1, 1)
    with pytest.raises(CorpusError, match=re.escape(f"{path}:3: mention 'Hydro' is not on token boundaries")):
        list(create_pubtator_reader(path, strict=True)(nlp))


def test_pubtator_tolerates_whitespace_mismatch_unless_strict(tmp_path: Path) -> None:
    path = write(tmp_path, "1|t|Two words\n1|a|x\n1\t0\t9\tTwo words  \tX\n")
    assert read_pubtator(path)[0].mentions == [(0, 9, "Two words", "X")]
    with pytest.raises(CorpusError, match=re.escape(f"{path}:3: mention 'Two words  ' does not equal")):
        read_pubtator(path, strict=True)


@pytest.mark.parametrize(
    "text,line,expected",
    [
        ("1|t|Title\n1|a|Abstract\n1\tx\t5\tTitle\tX\n", None, None),  # a relation-like line is skipped
        ("1|t|Title\n1|a|Abstract\n1\t0\t5.0\tTitle\tX\n", 3, r"expected integer offsets, found start='0' end='5.0'"),
        ("1|t|Title\n1|a|Abstract\n1\t-1\t5\tTitle\tX\n", 3, r"expected integer offsets"),
        ("1|t|Title\n1|a|Abstract\n1\t5\t5\tTitle\tX\n", 3, r"expected start < end, found start=5 end=5"),
        (
            "1|t|Title\n1|a|Abstract\n1\t6\t99\tAbstract\tX\n",
            3,
            r"offsets 6-99 outside the text of 1 \(14 characters\)",
        ),
        ("1|t|Title\n1|a|Abstract\n1\t0\t5\tTitel\tX\n", 3, r"mention 'Titel' does not equal the text at 0:5, 'Title'"),
        ("1|t|Title\n1\t0\t5\tTitle\tX\n1|a|Abstract\n", 2, r"expected 'PMID\|a\|abstract' after the title of 1"),
        ("1\t0\t5\tTitle\tX\n1|t|Title\n1|a|Abstract\n", 1, r"mention line before its document's 'PMID\|t\|title'"),
        ("1|t|Title\n1|a|Abstract\n2\t0\t5\tTitle\tX\n", 3, r"PMID '2' does not match the current document '1'"),
        ("1|t|Title\n2|a|Abstract\n", 2, r"PMID '2' does not match the current document '1' \(title on line 1\)"),
        ("1|a|Abstract\n", 1, r"'\|a\|' line without a 'PMID\|t\|title' line before it"),
        ("1|t|Title\n\n1|a|Abstract\n", 1, r"expected 'PMID\|a\|abstract' after the title of 1"),
        ("1|t|Title\n", 1, r"expected 'PMID\|a\|abstract' after the title of 1"),
        (
            "1|t|Title\n1|a|Abstract\n1\t0\t5\tTitle\n",
            3,
            r"expected 'PMID<TAB>start<TAB>end<TAB>mention<TAB>type'.*\(4 col",
        ),
        ("1|t|Title\n1|a|Abstract\n1\t0\t5\tTitle\t\n", 3, r"expected an entity type in column 5"),
        ("1|t|Title\n1|a|Abstract\nrubbish\n", 3, r"expected 'PMID\|t\|title', 'PMID\|a\|abstract', a tab-separated"),
        ("\n\n", 0, r"no documents found"),
    ],
)
def test_pubtator_errors_name_file_line_and_expectation(tmp_path: Path, text: str, line: int, expected: str) -> None:
    path = write(tmp_path, text, "bad.PubTator.txt")
    if expected is None:
        assert read_pubtator(path)[0].mentions == []
        return
    where = f"{path}:{line}: " if line else f"{path}: "
    with pytest.raises(CorpusError, match=re.escape(where) + expected):
        read_pubtator(path)


def test_pubtator_reader_raises_on_first_pass(tmp_path: Path, nlp: Language) -> None:
    path = write(tmp_path, PUBTATOR + "3|t|T\n3|a|A\n3\t0\t1\tX\tChemical\n")
    with pytest.raises(CorpusError, match=re.escape(f"{path}:14: mention 'X' does not equal")):
        next(iter(create_pubtator_reader(path)(nlp)))
    with pytest.raises(CorpusError, match="file not found"):
        create_pubtator_reader(tmp_path / "missing.txt")


# Plain text, sentence splitting, mixing


def test_split_sentences() -> None:
    text = "  First one. Second (B) ends here.  3 items? yes. e.g. fine. Last"
    assert [text[s:e] for s, e in split_sentences(text)] == [
        "First one.",
        "Second (B) ends here.",
        "3 items? yes. e.g. fine.",
        "Last",
    ]
    assert split_sentences("   ") == [] and split_sentences("No split. lower case.") == [(0, 21)]


def test_plain_text_reader(tmp_path: Path, nlp: Language) -> None:
    path = write(tmp_path, "One two three. Four five.\n\n   \nSix. Seven eight nine ten eleven.\n")
    egs = list(create_plain_text_reader(path)(nlp))
    assert [eg.reference.text for eg in egs] == ["One two three.", "Four five.", "Six.", "Seven eight nine ten eleven."]
    for eg in egs:
        assert eg.predicted.text == eg.reference.text and eg.predicted is not eg.reference
        assert not eg.reference.has_annotation("ENT_IOB")
    short = create_plain_text_reader(path, min_length=3, max_length=4, limit=1)
    assert [eg.reference.text for eg in short(nlp)] == ["One two three."]
    whole = create_plain_text_reader(path, split_sentences=False, shuffle=True)
    assert sorted(eg.reference.text for eg in whole(nlp)) == [
        "One two three. Four five.",
        "Six. Seven eight nine ten eleven.",
    ]


def test_mixed_reader(tmp_path: Path, nlp: Language) -> None:
    gold = create_iob_reader(write(tmp_path, "".join(f"g{i}\tO\n\n" for i in range(10)), "g.tsv"))
    raw = create_plain_text_reader(write(tmp_path, "\n".join(f"u{i}" for i in range(10)), "u.txt"))
    assert [eg.reference.text for eg in create_mixed_reader(gold, raw, shuffle=False)(nlp)][9:11] == ["g9", "u0"]
    random.seed(0)
    mixed = [eg.reference.text for eg in create_mixed_reader(gold, raw)(nlp)]
    assert sorted(mixed) == sorted([f"g{i}" for i in range(10)] + [f"u{i}" for i in range(10)])
    assert mixed[:10] != [f"g{i}" for i in range(10)]
    assert len(list(create_mixed_reader(gold)(nlp))) == 10


def test_readers_resolve_from_config(tmp_path: Path, nlp: Language) -> None:
    gold, raw = write(tmp_path, IOB, "g.tsv"), write(tmp_path, "Some text. More text.\n", "u.txt")
    config = Config().from_str(f"""
        [corpus]
        @readers = "spacy_fastbioner.MixedCorpus.v1"
        shuffle = false
        [corpus.gold]
        @readers = "spacy_fastbioner.IobCorpus.v1"
        path = "{gold}"
        [corpus.unlabelled]
        @readers = "spacy_fastbioner.PlainTextCorpus.v1"
        path = "{raw}"
        [dev]
        @readers = "spacy_fastbioner.PubTatorCorpus.v1"
        path = "{write(tmp_path, PUBTATOR)}"
        per_sentence = true
        """)
    resolved = registry.resolve(config)
    assert [eg.reference.text for eg in resolved["corpus"](nlp)][1:] == ["No entity", "Some text.", "More text."]
    assert len(list(resolved["dev"](nlp))) == 6


# The real corpora


def test_real_ncbi_iob_dev(data_dir: Path, nlp: Language) -> None:
    reader = create_iob_reader(data_dir / "NCBI-disease-IOB" / "devel.tsv")
    egs = list(reader(nlp))
    assert len(egs) == 923 and sum(len(eg.reference.ents) for eg in egs) == 787 and reader.n_repairs == 0
    assert all(eg.reference.has_annotation("ENT_IOB") for eg in egs)


@pytest.mark.parametrize(
    "name,n_docs", [("NCBI-disease/NCBIdevelopset_corpus.txt", 100), ("BC5CDR/CDR_DevelopmentSet.PubTator.txt", 500)]
)
def test_real_pubtator_dev(data_dir: Path, nlp: Language, name: str, n_docs: int) -> None:
    reader = create_pubtator_reader(data_dir / "raw" / name)
    egs = list(reader(nlp))
    assert len(egs) == reader.n_docs == n_docs and reader.n_mentions > 0
    assert 0 <= reader.n_misaligned < 0.05 * reader.n_mentions and reader.n_dropped == 0
    n_ents = sum(len(eg.reference.ents) for eg in egs)
    assert n_ents == reader.n_mentions - reader.n_overlapping
    if name.startswith("NCBI"):
        assert reader.n_mentions == 787 and {e.label_ for eg in egs for e in eg.reference.ents} == {"Disease"}
    assert len(read_pubtator(data_dir / "raw" / name)) == n_docs
