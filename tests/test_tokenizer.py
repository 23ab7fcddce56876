import pickle
from pathlib import Path

import pytest
import spacy
from hypothesis import given, settings
from hypothesis import strategies as st
from spacy.language import Language
from spacy.tokenizer import Tokenizer
from tokenization import alignment_study, boundary_study, token_split_study

from spacy_fastbioner.corpora.tokenizer import TOKENIZER_NAME, BioTokenizer, create_bio_tokenizer

EXAMPLES = [
    ("5-fluorouracil-induced", ["5", "-", "fluorouracil", "-", "induced"]),
    ("Na(+)/K(+)-ATPase", ["Na", "(", "+", ")", "/", "K", "(", "+", ")", "-", "ATPase"]),
    ("BRCA1/2 carriers", ["BRCA1", "/", "2", "carriers"]),
    ("IL-2", ["IL", "-", "2"]),
    ("0.5 +/- 1.2 mg/kg", ["0", ".", "5", "+", "/", "-", "1", ".", "2", "mg", "/", "kg"]),
    ("TNF-α, e.g. naïve", ["TNF", "-", "α", ",", "e", ".", "g", ".", "na", "ï", "ve"]),
    ("patient's don't", ["patient", "'", "s", "don", "'", "t"]),
    ("1,2-dichloroethane", ["1", ",", "2", "-", "dichloroethane"]),
]

TRICKY = [
    "",
    " ",
    "\n\n",
    "  leading and trailing  ",
    "a\r\nb\tc \n d",
    "5\u2013FU\u00a0and\u2009TNF\u2011\u03b1",
    "\x00\x01\x1f control",
    "emoji \U0001f600\U0001f44d\U0001f3fd and \U00010348",
    "mixed \u0645\u0631\u062d\u0628\u0627 \u4e2d\u6587 \u0436\u0438\u0440",
    "e\u0301 combining",
]


NLP = spacy.blank("en", config={"nlp": {"tokenizer": {"@tokenizers": TOKENIZER_NAME}}})


@pytest.fixture(scope="module")
def nlp() -> Language:
    return NLP


def test_registry_lookup(nlp: Language) -> None:
    assert spacy.registry.tokenizers.get(TOKENIZER_NAME) is create_bio_tokenizer
    assert isinstance(nlp.tokenizer, BioTokenizer)
    assert nlp.config["nlp"]["tokenizer"]["@tokenizers"] == TOKENIZER_NAME


@pytest.mark.parametrize("text,expected", EXAMPLES)
def test_tokens(nlp: Language, text: str, expected: list) -> None:
    doc = nlp(text)
    assert [t.text for t in doc if not t.is_space] == expected
    assert doc.text == text


@pytest.mark.parametrize("text", TRICKY)
def test_text_round_trip(nlp: Language, text: str) -> None:
    doc = nlp.make_doc(text)
    assert doc.text == text
    assert all(t.text for t in doc)


def test_whitespace_like_spacy(nlp: Language) -> None:
    english = spacy.blank("en")
    for text in ["a  b", "a \n b", "  a", "a\n\nb", " ", "\n a", "a b "]:
        ours = [(t.text, t.whitespace_) for t in nlp(text)]
        assert ours == [(t.text, t.whitespace_) for t in english(text)], text


def test_lone_surrogate_is_replaced(nlp: Language) -> None:
    doc = nlp("a\ud800b")
    assert doc.text == "a\ufffdb"
    assert [t.text for t in doc] == ["a", "\ufffd", "b"]


def test_long_text(nlp: Language) -> None:
    text = "5-FU (0.5 mg/kg) induced TNF-\u03b1.\n" * 30_000  # ~1 MB
    doc = nlp(text)
    assert doc.text == text
    assert len(doc) == 30_000 * 17


def test_pipe(nlp: Language) -> None:
    texts = ["IL-2", "", "BRCA1/2"]
    tokenizer = nlp.tokenizer
    assert isinstance(tokenizer, BioTokenizer)
    assert [d.text for d in tokenizer.pipe(texts, batch_size=2)] == texts
    assert [d.text for d in nlp.pipe(texts)] == texts


def test_serialization(nlp: Language, tmp_path: Path) -> None:
    nlp.to_disk(tmp_path)
    nlp2 = spacy.load(tmp_path)
    assert isinstance(nlp2.tokenizer, BioTokenizer)
    text = "Na(+)/K(+)-ATPase and 5-fluorouracil"
    assert [t.text for t in nlp2(text)] == [t.text for t in nlp(text)]
    nlp3 = spacy.blank("en", config=nlp.config).from_bytes(nlp.to_bytes())
    assert [t.text for t in nlp3(text)] == [t.text for t in nlp(text)]
    tokenizer = pickle.loads(pickle.dumps(nlp.tokenizer))
    assert [t.text for t in tokenizer(text)] == [t.text for t in nlp(text)]
    assert [t.text for t in pickle.loads(pickle.dumps(nlp))(text)] == [t.text for t in nlp(text)]


def test_from_bytes_rejects_other_data(nlp: Language) -> None:
    with pytest.raises(ValueError, match="expected name and version"):
        BioTokenizer(nlp.vocab).from_bytes(Tokenizer(nlp.vocab).to_bytes())


def test_boundary_study(nlp: Language) -> None:
    text = "5-HT6 receptors and 5-fluorouracil"
    spans = [(0, 4), (0, 5), (20, 34), (23, 34)]
    result = boundary_study([(text, spans)], nlp.make_doc)
    assert (result["entities"], result["cut"], result["cut_start"], result["cut_end"]) == (4, 2, 1, 1)
    assert result["examples"][0] == ("5-HT", ["5", "-", "HT6"])
    assert boundary_study([], nlp.make_doc)["cut_pct"] == 0.0


def test_token_split_and_alignment_studies(nlp: Language) -> None:
    assert token_split_study(["IL", "-", "2", "IL-2"], nlp.make_doc)["split"] == 1
    result = alignment_study(["IL-2 in  BRCA1/2."], ["x", "IL", "-", "2", "in", "BRCA1/2", "."], nlp.make_doc)
    assert (result["docs_found"], result["docs_identical"]) == (1, 0)
    assert (result["tokens"], result["reference_tokens"], result["matched"]) == (8, 6, 5)


@settings(max_examples=300, deadline=None)
@given(st.text())
def test_fuzz_never_raises_and_keeps_text(text: str) -> None:
    doc = NLP.make_doc(text)
    assert doc.text == text
    assert all(t.text for t in doc)
