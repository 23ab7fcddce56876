"""Bad input never breaks inference: odd characters, empty and huge texts,
fuzzed text, and the same entities from every way of calling the pipeline."""

import signal
from typing import Iterator, List, Tuple

import pytest
import spacy
from helpers import (
    make_examples,
    make_tiny_bert,
    synthetic_sentences,
    tiny_transformer_config,
    train_pipeline,
)
from hypothesis import given, settings
from hypothesis import strategies as st
from spacy.language import Language
from spacy.tokens import Doc

BIO_TOKENIZER = {"nlp": {"tokenizer": {"@tokenizers": "spacy_fastbioner.BioTokenizer.v1"}}}
LABELS = {"Disease", "Chemical"}
ODD_TEXTS = {
    "empty": "",
    "space": " ",
    "whitespace": " \n\n\t  \r\n \u00a0",
    "control": "aspirin\x00\x01\x07\x1b[0m\x7f\x85 cancer\x0b\x0c\u200b\u200e\u2028\ufeff",
    "emoji": "\U0001f9ec breast cancer \U0001f600 \U0001f469\u200d\U0001f52c and \U0001d538\U0001d564\U0001d561 \U0001f1e9\U0001f1ea",
    "dashes_spaces": "colon\u2011cancer \u2013 aspirin\u00a0dose\u2009levels\u3000x \u2014 5\u22123 \u2012 a\u202fb\u205f\u2060c",
    "mixed_scripts": "рак молочной железы 乳腺癌 سرطان الثدي \u05e1\u05e8\u05d8\u05df breast cancer \u0915\u0948\u0902\u0938\u0930",
    "combining": "e\u0301\u0302\u0303 n\u0308aive Z\u0336\u0335a\u0337lgo cancer",
    "long_token": "x" * 5000 + " breast cancer " + "7" * 3000,
    "punctuation": ".,;:!?" * 200,
    "newlines": "\n" * 500 + "aspirin" + "\n" * 500,
}


@pytest.fixture(scope="module")
def nlp(tmp_path_factory) -> Language:
    """A tiny pipeline with the BioTokenizer, trained just enough to predict
    entities."""
    bert = make_tiny_bert(tmp_path_factory.mktemp("bert"), n_layers=2)
    nlp = spacy.blank("en", config=BIO_TOKENIZER)
    config = tiny_transformer_config(bert)
    # Real tokenizers declare the model's limit (BERT: 512), which
    # spacy-transformers uses to truncate a window of too many wordpieces;
    # the tiny BERT has 128 positions.
    config["model"]["tokenizer_config"]["model_max_length"] = 128
    nlp.add_pipe("transformer", config=config)
    nlp.add_pipe("fastbioner_ner")
    train = make_examples(nlp, synthetic_sentences(100, seed=1))
    return train_pipeline(nlp, train, epochs=2, batch_size=4)


@pytest.fixture(scope="module")
def texts() -> List[str]:
    sentences = [" ".join(words) for words, _ in synthetic_sentences(30, seed=3)]
    return sentences[:10] + list(ODD_TEXTS.values()) + sentences[10:] + ["", "  "]


def assert_valid(doc: Doc, text: str) -> None:
    """The doc keeps the text, and its entities are ordered, non-overlapping
    spans of it with known labels."""
    assert doc.text == text
    end = 0
    for ent in doc.ents:
        assert end <= ent.start < ent.end <= len(doc)
        assert ent.label_ in LABELS
        assert ent.text == text[ent.start_char : ent.end_char]
        end = ent.end


def entities(docs: Iterator[Doc]) -> List[List[Tuple[int, int, str]]]:
    return [[(e.start_char, e.end_char, e.label_) for e in doc.ents] for doc in docs]


def test_the_pipeline_finds_entities(nlp: Language) -> None:
    doc = nlp("the patients with breast cancer were treated with aspirin")
    assert [(e.text, e.label_) for e in doc.ents] == [("breast cancer", "Disease"), ("aspirin", "Chemical")]


@pytest.mark.parametrize("name", sorted(ODD_TEXTS))
def test_odd_texts(nlp: Language, name: str) -> None:
    text = ODD_TEXTS[name]
    assert_valid(nlp(text), text)


def test_lone_surrogates_become_replacement_characters(nlp: Language) -> None:
    text = "aspirin \ud800 breast cancer \udfff"
    doc = nlp(text)
    assert_valid(doc, text.replace("\ud800", "\ufffd").replace("\udfff", "\ufffd"))
    assert [e.text for e in doc.ents][-1] == "breast cancer"


def test_empty_docs_in_a_batch(nlp: Language) -> None:
    batch = ["", "breast cancer", " ", "\n", "aspirin", ""]
    assert entities(nlp.pipe(batch, batch_size=8)) == entities(nlp(text) for text in batch)
    assert entities(nlp.pipe(["", " "])) == [[], []]


def test_one_megabyte_text(nlp: Language) -> None:
    """1,000,000 characters, spaCy's default `nlp.max_length`; about 260,000
    tokens and 8,000 transformer windows."""
    base = (
        "Somatic-cell selection in heterozygotes for glucose-6-phosphate dehydrogenase (G6PD) "
        "deficiency: the patients with breast cancer were treated with 0.5 mg/kg aspirin \u2013 "
        "see Na(+)/K(+)-ATPase; TNF\u03b1 rose \u00d7 3 in 12% of mice. "
    )
    text = (base * (nlp.max_length // len(base) + 1))[: nlp.max_length]
    doc = nlp(text)
    assert_valid(doc, text)
    assert len(doc) > 200_000
    assert any(ent.text == "breast cancer" and ent.start_char > 0.99 * len(text) for ent in doc.ents)


@settings(max_examples=100, deadline=None)
@given(text=st.text())
def test_fuzz_nlp(nlp: Language, text: str) -> None:
    assert_valid(nlp(text), text)


@settings(max_examples=100, deadline=None)
@given(batch=st.lists(st.text(), max_size=6))
def test_fuzz_pipe(nlp: Language, batch: List[str]) -> None:
    docs = list(nlp.pipe(batch, batch_size=2))
    assert len(docs) == len(batch)
    for doc, text in zip(docs, batch):
        assert_valid(doc, text)


@pytest.mark.parametrize("batch_size", [1, 3])
def test_batch_size_gives_the_same_entities(nlp: Language, texts: List[str], batch_size: int) -> None:
    serial = entities(nlp.pipe(texts))
    assert any(serial)
    assert entities(nlp.pipe(texts, batch_size=batch_size)) == serial


def _timeout(signum, frame):
    raise TimeoutError("nlp.pipe(n_process=2) did not finish in 120 s")


def test_two_processes_give_the_same_entities(nlp: Language, texts: List[str]) -> None:
    """Regression: after the pipeline had run in the parent, forked workers
    waited forever for PyTorch's OpenMP threads (see threads.py). The limit is
    set here as the README tells users to (this test passed alone only
    because an earlier test had set it; alone, it hung)."""
    from spacy_fastbioner import limit_torch_threads_in_children

    limit_torch_threads_in_children()
    serial = entities(nlp.pipe(texts, batch_size=4))  # runs PyTorch in this process first
    previous = signal.signal(signal.SIGALRM, _timeout)
    signal.alarm(120)
    try:
        parallel = entities(nlp.pipe(texts, batch_size=4, n_process=2))
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
    assert parallel == serial
