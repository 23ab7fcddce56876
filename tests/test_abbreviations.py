"""Tests for spacy_fastbioner.pipeline.abbreviations: Schwartz & Hearst's
definitions and the `fastbioner_abbreviations` consistency component."""

import json
from typing import List, Optional, Tuple

import pytest
import spacy
from spacy.language import Language
from spacy.tokens import Doc, Span

from spacy_fastbioner.corpora.tokenizer import BioTokenizer
from spacy_fastbioner.pipeline.abbreviations import (
    best_long_form,
    find_abbreviations,
    find_definitions,
    is_short_form,
    use_abbreviations,
)


@pytest.fixture(scope="module")
def nlp() -> Language:
    nlp = spacy.blank("en")
    nlp.tokenizer = BioTokenizer(nlp.vocab)
    nlp.add_pipe("fastbioner_sentences")
    return nlp


def definitions(nlp: Language, text: str) -> List[Tuple[str, str]]:
    return [(short.text, long.text) for short, long in find_definitions(nlp(text))]


@pytest.mark.parametrize(
    "short,candidate,expected",
    [
        # The algorithm's rules, on definitions of the kind the paper discusses:
        ("HSF", "in the heat shock transcription factor", "heat shock transcription factor"),
        ("SBMA", "Spinal and bulbar muscular atrophy", "Spinal and bulbar muscular atrophy"),
        ("AR", "within the androgen receptor", "androgen receptor"),
        # the shortest long form whose first letter starts a word ("a" of "and" is not taken)
        ("APC", "patients with adenomatous polyposis coli", "adenomatous polyposis coli"),
        # characters that are not letters or digits are skipped
        ("TNF-alpha", "of tumour necrosis factor alpha", "tumour necrosis factor alpha"),
        ("5-HT", "of 5-hydroxytryptamine", "5-hydroxytryptamine"),
        # a letter inside a word can match later letters, never the first one
        ("ADC", "the apparent diffusion coefficient", "apparent diffusion coefficient"),
    ],
)
def test_best_long_form(short: str, candidate: str, expected: str):
    start = best_long_form(short, candidate)
    assert start is not None and candidate[start:] == expected


@pytest.mark.parametrize(
    "short,candidate",
    [("HSF", "the heat shock protein"), ("XYZ", "no such letters here"), ("BRCA1", "breast cancer")],
)
def test_best_long_form_refuses(short: str, candidate: str):
    assert best_long_form(short, candidate) is None


def test_short_form_filter():
    assert is_short_form("APC") and is_short_form("TNF-alpha") and is_short_form("5-HT")
    for text in ["p < 0.05", "2003", "a", "see figure one", "verylongword12"]:
        assert not is_short_form(text), text


def test_definitions_long_then_short_and_short_then_long(nlp):
    text = (
        "Germline mutations of the adenomatous polyposis coli (APC) gene cause disease. "
        "We treated HSF (heat shock transcription factor) knockout mice."
    )
    assert definitions(nlp, text) == [
        ("APC", "adenomatous polyposis coli"),
        ("HSF", "heat shock transcription factor"),
    ]


def test_definitions_ignore_parentheses_that_are_no_abbreviations(nlp):
    text = "Levels rose (p < 0.05) as shown before (Fig. 1) in 12 patients (2003) (see below)."
    assert definitions(nlp, text) == []


def test_definition_stays_in_its_sentence(nlp):
    # "Mice" of the previous sentence is no part of the long form.
    text = "We studied mice. Renal failure (RF) followed."
    assert definitions(nlp, text) == [("RF", "Renal failure")]


def test_mentions_are_whole_words_and_each_short_form_defined_once(nlp):
    text = "The androgen receptor (AR) binds. AR and ARs differ from CAR; AR again. Another receptor (AR) here."
    doc = nlp(text)
    mentions = find_abbreviations(doc)
    assert [m.start_char for m, _ in mentions] == [i for i in _find_all(text, "AR") if _whole(text, i, 2)]
    assert {long.text for _, long in mentions} == {"androgen receptor"}


def _find_all(text: str, sub: str) -> List[int]:
    out, i = [], text.find(sub)
    while i >= 0:
        out.append(i)
        i = text.find(sub, i + 1)
    return out


def _whole(text: str, i: int, n: int) -> bool:
    return (i == 0 or not text[i - 1].isalnum()) and (i + n == len(text) or not text[i + n].isalnum())


def with_ents(nlp: Language, text: str, ents: List[Tuple[str, str, int]]) -> Doc:
    """The doc of `text` with entities given as (phrase, label, occurrence)."""
    doc = nlp(text)
    spans = []
    for phrase, label, nth in ents:
        start = _find_all(text, phrase)[nth]
        span = doc.char_span(start, start + len(phrase), label=label)
        assert span is not None, phrase
        spans.append(span)
    doc.ents = spans
    return doc


def run(doc: Doc, make_consistent: bool = True) -> List[Tuple[str, str, int]]:
    nlp = spacy.blank("en")
    component = nlp.add_pipe("fastbioner_abbreviations", config={"make_consistent": make_consistent})
    doc = component(doc)
    return [(e.text, e.label_, e.start_char) for e in doc.ents]


TEXT = "Familial adenomatous polyposis coli (APC) is inherited. APC patients and APC mutations were studied."


def ents_of(text: str, phrase: str, label: str, nths: Optional[List[int]] = None) -> List[Tuple[str, str, int]]:
    starts = _find_all(text, phrase)
    return [(phrase, label, starts[n]) for n in (nths if nths is not None else range(len(starts)))]


def test_long_form_entity_decides_for_its_short_forms(nlp):
    # The NER found the long form as a disease, missed the definition's APC and
    # took a later one for a chemical.
    doc = with_ents(nlp, TEXT, [("adenomatous polyposis coli", "Disease", 0), ("APC", "Chemical", 2)])
    assert run(doc) == [("adenomatous polyposis coli", "Disease", TEXT.index("adenomatous"))] + ents_of(
        TEXT, "APC", "Disease"
    )


def test_short_forms_decide_for_an_untagged_long_form(nlp):
    doc = with_ents(nlp, TEXT, [("APC", "Disease", 0), ("APC", "Disease", 1)])
    assert run(doc) == [("adenomatous polyposis coli", "Disease", TEXT.index("adenomatous"))] + ents_of(
        TEXT, "APC", "Disease"
    )


def test_split_votes_and_no_long_form_entity_leave_no_short_form_entity(nlp):
    doc = with_ents(nlp, TEXT, [("APC", "Disease", 0), ("APC", "Chemical", 1)])
    assert run(doc) == []


def test_mention_inside_a_longer_entity_is_left(nlp):
    doc = with_ents(nlp, TEXT, [("adenomatous polyposis coli", "Disease", 0), ("APC mutations", "Chemical", 0)])
    out = run(doc)
    assert ("APC mutations", "Chemical", TEXT.index("APC mutations")) in out
    assert ents_of(TEXT, "APC", "Disease", [0, 1])[1] in out


def test_off_stores_abbreviations_and_changes_no_entity(nlp):
    doc = with_ents(nlp, TEXT, [("adenomatous polyposis coli", "Disease", 0)])
    before = [(e.text, e.label_, e.start_char) for e in doc.ents]
    assert run(doc, make_consistent=False) == before
    group = doc.spans["abbreviations"]
    assert [s.text for s in group] == ["APC"] * 3
    assert all(isinstance(s._.long_form, Span) and s._.long_form.text == "adenomatous polyposis coli" for s in group)


def test_in_a_pipeline_and_round_trip(nlp, tmp_path):
    pipe = spacy.blank("en", config={"nlp": {"tokenizer": {"@tokenizers": "spacy_fastbioner.BioTokenizer.v1"}}})
    ruler = pipe.add_pipe("entity_ruler")
    ruler.add_patterns([{"label": "Disease", "pattern": "adenomatous polyposis coli"}])
    pipe.add_pipe("fastbioner_abbreviations")
    doc = pipe(TEXT)
    assert [e.label_ for e in doc.ents] == ["Disease"] * 4
    pipe.to_disk(tmp_path / "p")
    loaded = spacy.load(tmp_path / "p")
    assert [(e.text, e.label_) for e in loaded(TEXT).ents] == [(e.text, e.label_) for e in doc.ents]


def test_never_raises_on_odd_text(nlp):
    pipe = spacy.blank("en")
    pipe.add_pipe("fastbioner_abbreviations")
    for text in ["", "(", ")", "( )", "A (B", "((AB)) (AB)", "x (AB) " * 50, "(AB) starts"]:
        pipe(text)


def test_use_abbreviations_adds_and_removes():
    pipe = spacy.blank("en")
    pipe.add_pipe("entity_ruler")
    use_abbreviations(pipe, True)
    use_abbreviations(pipe, True)
    assert pipe.pipe_names == ["entity_ruler", "fastbioner_abbreviations"]
    use_abbreviations(pipe, False)
    assert pipe.pipe_names == ["entity_ruler"]


def test_evaluate_raw_on_and_off(tmp_path):
    from spacy.cli._util import app
    from typer.testing import CliRunner

    import spacy_fastbioner.cli  # noqa: F401  (registers `spacy fastbioner`)

    pipe = spacy.blank("en", config={"nlp": {"tokenizer": {"@tokenizers": "spacy_fastbioner.BioTokenizer.v1"}}})
    pipe.add_pipe("entity_ruler").add_patterns([{"label": "Disease", "pattern": "adenomatous polyposis coli"}])
    pipe.to_disk(tmp_path / "model")
    title, abstract = "Familial adenomatous polyposis coli (APC).", "APC patients were studied."
    text = f"{title} {abstract}"
    lines = [f"1|t|{title}", f"1|a|{abstract}"]
    for phrase in ["adenomatous polyposis coli", "APC"]:
        for start in _find_all(text, phrase):
            lines.append(f"1\t{start}\t{start + len(phrase)}\t{phrase}\tDisease\tD011125")
    (tmp_path / "dev.txt").write_text("\n".join(lines) + "\n\n", encoding="utf8")
    recall = {}
    for flag in ["--abbreviations", "--no-abbreviations"]:
        out = tmp_path / f"{flag}.json"
        args = ["fastbioner", "evaluate-raw", str(tmp_path / "model"), str(tmp_path / "dev.txt"), flag, "-o", str(out)]
        result = CliRunner().invoke(app, args)
        assert result.exit_code == 0, result.output
        recall[flag] = json.loads(out.read_text(encoding="utf8"))["ents_r"]
    assert recall == {"--abbreviations": 1.0, "--no-abbreviations": pytest.approx(1 / 3)}
