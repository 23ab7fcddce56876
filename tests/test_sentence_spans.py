"""Sentence-aligned transformer windows: the `spacy_fastbioner.sentence_spans.v1`
span getter, the `fastbioner_sentences` component, `with_sentence_windows` and
`spacy fastbioner sentence-windows`."""

import subprocess
import sys
from pathlib import Path
from typing import List, Optional, Tuple, cast

import numpy
import pytest
import spacy
from helpers import synthetic_sentences
from hypothesis import given, settings
from hypothesis import strategies as st
from spacy.cli._util import app
from spacy.language import Language
from spacy.tokens import Doc
from spacy.util import registry
from spacy_transformers import Transformer
from spacy_transformers.span_getters import get_strided_spans
from typer.testing import CliRunner

import spacy_fastbioner.cli  # noqa: F401  (registers the commands)
from spacy_fastbioner.corpora.text import split_sentences
from spacy_fastbioner.encoder.sentence_windows import with_sentence_windows
from spacy_fastbioner.ml.span_getters import (
    SENTENCE_SPANS,
    configure_sentence_spans,
    get_sentence_spans,
    strided_ranges,
)
from spacy_fastbioner.pipeline.ner import FastBioNER
from spacy_fastbioner.pipeline.sentences import SentenceSplitter

Ranges = List[Tuple[int, int]]
BLANK = spacy.blank("en")


@pytest.fixture(scope="module")
def vocab_nlp() -> Language:
    return spacy.blank("en")


@pytest.fixture(scope="module")
def bio_nlp() -> Language:
    nlp = spacy.blank("en", config={"nlp": {"tokenizer": {"@tokenizers": "spacy_fastbioner.BioTokenizer.v1"}}})
    nlp.add_pipe("fastbioner_sentences", name="sentences")
    return nlp


def make_doc(nlp: Language, n_tokens: int, sent_starts: Optional[List[int]] = None) -> Doc:
    words = [f"w{i}" for i in range(n_tokens)]
    if sent_starts is None:
        return Doc(nlp.vocab, words=words)
    starts = set(sent_starts) | {0}
    return Doc(nlp.vocab, words=words, sent_starts=[i in starts for i in range(n_tokens)])


def ranges(spans) -> Ranges:
    return [(span.start, span.end) for span in spans]


# The span getter


def test_one_span_per_sentence(vocab_nlp: Language) -> None:
    doc = make_doc(vocab_nlp, 10, [4, 7])
    assert [ranges(spans) for spans in get_sentence_spans([doc], 128, 96)] == [[(0, 4), (4, 7), (7, 10)]]


def test_long_sentence_is_strided_inside_the_sentence(vocab_nlp: Language) -> None:
    doc = make_doc(vocab_nlp, 15, [3, 13])
    (spans,) = get_sentence_spans([doc], 4, 3)
    assert ranges(spans) == [(0, 3), (3, 7), (6, 10), (9, 13), (13, 15)]


def test_doc_without_boundaries_is_strided_like_strided_spans(vocab_nlp: Language) -> None:
    docs = [make_doc(vocab_nlp, n) for n in (1, 5, 96, 128, 129, 200, 500)]
    assert not docs[3].has_annotation("SENT_START")
    ours = get_sentence_spans(docs, 128, 96)
    theirs = get_strided_spans(docs, 128, 96)
    assert [ranges(spans) for spans in ours] == [ranges(spans) for spans in theirs]


def test_empty_doc_has_no_spans(vocab_nlp: Language) -> None:
    assert get_sentence_spans([Doc(vocab_nlp.vocab, words=[])], 128, 96) == [[]]
    assert strided_ranges(5, 5, 4, 3) == []


@settings(max_examples=200, deadline=None)
@given(
    n_tokens=st.integers(0, 60),
    starts=st.lists(st.integers(1, 59), max_size=8),
    window=st.integers(1, 12),
    stride_fraction=st.floats(0.0, 1.0),
    with_boundaries=st.booleans(),
)
def test_spans_cover_every_token_within_sentences(
    n_tokens: int, starts: List[int], window: int, stride_fraction: float, with_boundaries: bool
) -> None:
    stride = max(1, round(window * stride_fraction))
    nlp = BLANK
    sent_starts = [s for s in starts if s < n_tokens] if with_boundaries and n_tokens else None
    doc = make_doc(nlp, n_tokens, sent_starts)
    (spans,) = configure_sentence_spans(window=window, stride=stride)([doc])
    covered = numpy.zeros(n_tokens, dtype=bool)
    sentence_of = numpy.zeros(n_tokens, dtype=int)
    if doc.has_annotation("SENT_START"):
        for k, sent in enumerate(doc.sents):
            sentence_of[sent.start : sent.end] = k
    for span in spans:
        assert 0 < len(span) <= window
        assert len(set(sentence_of[span.start : span.end])) == 1  # never across a boundary
        covered[span.start : span.end] = True
    assert covered.all()
    assert [s.start for s in spans] == sorted(s.start for s in spans)


@pytest.mark.parametrize("window,stride", [(0, 0), (4, 5), (4, 0), (-1, 1)])
def test_configure_refuses_gaps(window: int, stride: int) -> None:
    with pytest.raises(ValueError, match="stride <= window"):
        configure_sentence_spans(window=window, stride=stride)


def test_registered_by_name(vocab_nlp: Language) -> None:
    config = {"get_spans": {"@span_getters": SENTENCE_SPANS, "window": 4, "stride": 2}}
    get_spans = registry.resolve(config)["get_spans"]
    assert ranges(get_spans([make_doc(vocab_nlp, 6)])[0]) == [(0, 4), (2, 6)]
    assert ranges(registry.resolve({"g": {"@span_getters": SENTENCE_SPANS}})["g"]([make_doc(vocab_nlp, 200)])[0]) == [
        (0, 128),
        (96, 200),
    ]


# The sentence component


def test_abbreviations_are_not_split(bio_nlp: Language) -> None:
    doc = bio_nlp("We studied e.g. cancer. Then diabetes.")
    assert [t.text for t in doc][2:6] == ["e", ".", "g", "."]  # the tokenizer cuts e.g.
    assert [sent.text for sent in doc.sents] == ["We studied e.g. cancer.", "Then diabetes."]
    # spaCy's rule sentencizer splits inside "e . g ."
    sentencizer = spacy.blank("en", config={"nlp": {"tokenizer": {"@tokenizers": "spacy_fastbioner.BioTokenizer.v1"}}})
    sentencizer.add_pipe("sentencizer")
    assert len(list(sentencizer("We studied e.g. cancer. Then diabetes.").sents)) > 2


def test_sentences_follow_split_sentences(bio_nlp: Language) -> None:
    text = "  BRCA1 mutations (P < 0.001) cause cancer!  In 12 families?\n\n12 of them. done. Next"
    doc = bio_nlp(text)
    expected = [text[s:e] for s, e in split_sentences(text)]
    assert [sent.text.strip() for sent in doc.sents] == expected
    assert all(token.is_sent_start is not None for token in doc)  # every token decided


def test_existing_sentence_starts_are_kept(vocab_nlp: Language) -> None:
    words = ["Cancer", ".", "Then", "diabetes", ".", "More", "."]
    doc = Doc(vocab_nlp.vocab, words=words, sent_starts=[True, False, False, True, False, False, False])
    SentenceSplitter()(doc)
    assert [sent.start for sent in doc.sents] == [0, 3]


def test_gold_preprocessed_sentence_without_boundaries_gets_them(vocab_nlp: Language) -> None:
    doc = Doc(vocab_nlp.vocab, words=["Cancer", ".", "Then", "diabetes", "."])
    assert not doc.has_annotation("SENT_START")
    assert [sent.start for sent in SentenceSplitter()(doc).sents] == [0, 2]


def test_a_start_inside_a_token_moves_to_the_next_token(vocab_nlp: Language) -> None:
    doc = Doc(vocab_nlp.vocab, words=["cancer.", " Then", "diabetes"], spaces=[False, True, False])
    assert [sent.start for sent in SentenceSplitter()(doc).sents] == [0, 2]


@pytest.mark.parametrize("words", [[], ["Cancer"], ["Cancer", "."], ["\n\n", " "]])
def test_short_or_blank_docs(vocab_nlp: Language, words: List[str]) -> None:
    doc = SentenceSplitter()(Doc(vocab_nlp.vocab, words=words))
    assert len(list(doc.sents)) == (1 if words else 0)


def test_pipe_keeps_order(bio_nlp: Language) -> None:
    texts = ["One. Two.", "Single sentence", "A. B. C."]
    assert [len(list(doc.sents)) for doc in bio_nlp.pipe(texts, batch_size=2)] == [2, 1, 3]


TEXT_ALPHABET = st.sampled_from(list("aZ9.!?  \n\t()-e.g.") + ["e.g.", ". A", "Fig. 2", "\u00a0", "\u2009", "é"])


@settings(max_examples=150, deadline=None)
@given(st.lists(TEXT_ALPHABET, max_size=80).map("".join))
def test_never_raises_and_covers_the_doc(bio_nlp: Language, text: str) -> None:
    doc = bio_nlp(text)
    sents = list(doc.sents) if len(doc) else []
    assert sum(len(sent) for sent in sents) == len(doc)
    (spans,) = get_sentence_spans([doc], 4, 3)
    assert sorted({i for span in spans for i in range(span.start, span.end)}) == list(range(len(doc)))


def test_long_text_without_punctuation_stays_within_the_window(bio_nlp: Language) -> None:
    doc = bio_nlp("cancer and diabetes " * 20000)
    assert len(doc) == 60000 and len(list(doc.sents)) == 1
    (spans,) = get_sentence_spans([doc], 128, 96)
    assert max(len(span) for span in spans) == 128 and spans[-1].end == len(doc)


# Upgrading a trained pipeline


def multi_sentence_text() -> Tuple[str, List[str]]:
    sentences = []
    for words, _ in synthetic_sentences(12, seed=5):
        sentences.append(" ".join([words[0].capitalize()] + words[1:]) + ".")
    return " ".join(sentences), sentences


def ner_scores(nlp: Language, text: str) -> Tuple[Doc, numpy.ndarray]:
    """The NER head's logits for a text, run through the pipeline up to the NER."""
    ner = cast(FastBioNER, nlp.get_pipe("fastbioner_ner"))
    doc = nlp.make_doc(text)
    for name, proc in nlp.pipeline:
        if name == "fastbioner_ner":
            break
        doc = proc(doc)
    return doc, numpy.asarray(ner.predict([doc])[0])


@pytest.fixture(scope="module")
def upgraded_dir(trained_teacher: Language, tmp_path_factory) -> Path:
    """A copy of the tiny trained teacher (strided windows 48/32), upgraded to
    sentence windows of 32 tokens every 24, saved."""
    path = tmp_path_factory.mktemp("sentence_windows")
    trained_teacher.to_disk(path / "original")
    nlp = with_sentence_windows(spacy.load(path / "original"), window=32, stride=24)
    nlp.to_disk(path / "upgraded")
    return path


def test_with_sentence_windows_updates_pipeline_and_config(upgraded_dir: Path) -> None:
    nlp = spacy.load(upgraded_dir / "upgraded")
    assert nlp.pipe_names == ["sentences", "transformer", "fastbioner_ner"]
    assert nlp.get_pipe_meta("sentences").factory == "fastbioner_sentences"
    get_spans = nlp.config["components"]["transformer"]["model"]["get_spans"]
    assert get_spans == {"@span_getters": SENTENCE_SPANS, "window": 32, "stride": 24}
    doc = nlp.get_pipe("sentences")(nlp.make_doc("Cancer was seen. Then " + "diabetes " * 40))
    spans = cast(Transformer, nlp.get_pipe("transformer")).model.attrs["get_spans"]([doc])[0]
    assert ranges(spans) == [(0, 4), (4, 36), (28, 45)]
    # Upgrading twice changes nothing more.
    with_sentence_windows(nlp, window=32, stride=24)
    assert nlp.pipe_names == ["sentences", "transformer", "fastbioner_ner"]


def test_each_sentence_is_tagged_as_if_alone(upgraded_dir: Path) -> None:
    text, sentences = multi_sentence_text()
    upgraded = spacy.load(upgraded_dir / "upgraded")
    doc, scores = ner_scores(upgraded, text)
    assert len(doc) > 48  # more than one strided window of the original
    assert [sent.text for sent in doc.sents] == sentences
    original = spacy.load(upgraded_dir / "original")
    _, original_scores = ner_scores(original, text)
    differs = False
    for sent, sentence in zip(doc.sents, sentences):
        alone, alone_scores = ner_scores(upgraded, sentence)
        assert [t.text for t in alone] == [t.text for t in sent]
        numpy.testing.assert_allclose(scores[sent.start : sent.end], alone_scores, atol=1e-4)
        differs |= not numpy.allclose(original_scores[sent.start : sent.end], alone_scores, atol=1e-4)
    assert differs  # the original's windows span several sentences
    predicted = upgraded(text)
    assert {(e.start_char, e.end_char) for e in predicted.ents} == {
        (e.start_char + sent.start_char, e.end_char + sent.start_char)
        for sent, sentence in zip(doc.sents, sentences)
        for e in upgraded(sentence).ents
    }


def test_upgraded_pipeline_loads_in_a_fresh_process(upgraded_dir: Path) -> None:
    code = (
        "import sys, spacy; nlp = spacy.load(sys.argv[1]); "
        "doc = nlp('Cancer was seen. Then diabetes.'); "
        "print(nlp.pipe_names, len(list(doc.sents)))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code, str(upgraded_dir / "upgraded")], capture_output=True, text=True, timeout=600
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "['sentences', 'transformer', 'fastbioner_ner'] 2" in result.stdout


def test_with_sentence_windows_needs_a_transformer() -> None:
    with pytest.raises(ValueError, match="no spacy-transformers 'transformer' component"):
        with_sentence_windows(spacy.blank("en"))


def test_cli_upgrades_and_refuses_bad_input(upgraded_dir: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    out = tmp_path / "cli"
    result = runner.invoke(app, ["fastbioner", "sentence-windows", str(upgraded_dir / "original"), str(out)])
    assert result.exit_code == 0, result.output
    nlp = spacy.load(out)
    assert nlp.pipe_names == ["sentences", "transformer", "fastbioner_ner"]
    assert nlp.config["components"]["transformer"]["model"]["get_spans"]["window"] == 128
    result = runner.invoke(
        app,
        ["fastbioner", "sentence-windows", str(upgraded_dir / "original"), str(tmp_path / "x"), "-w", "8", "-s", "9"],
    )
    assert result.exit_code == 1 and "stride <= window" in result.output
    result = runner.invoke(app, ["fastbioner", "sentence-windows", str(tmp_path / "missing"), str(tmp_path / "y")])
    assert result.exit_code == 1 and "Cannot load the pipeline" in result.output
