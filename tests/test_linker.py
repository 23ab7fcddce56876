"""Tests for the `fastbioner_linker` component: labels restrict candidates, NIL below the
threshold, composite mentions, the abbreviation hand-off, serialisation without pickle."""

import pickle
from pathlib import Path
from typing import List, Tuple

import pytest
import spacy
from spacy.language import Language
from spacy.tokens import Doc, Span
from spacy.training import Example

import spacy_fastbioner.pipeline.linker as linker_module
from spacy_fastbioner.kb import ConceptKB
from spacy_fastbioner.kb.ranking import FEATURES
from spacy_fastbioner.pipeline.linker import FastBioLinker, split_composite

NAMES = [
    ("D001943", "breast cancer", "Disease"),
    ("D010051", "ovarian cancer", "Disease"),
    ("D011125", "adenomatous polyposis coli", "Disease"),
    ("D003139", "cold", "Disease"),
    ("D999999", "cold", "Chemical"),
    ("D008094", "lithium", "Chemical"),
]


def make_kb() -> ConceptKB:
    kb = ConceptKB()
    for entity, name, type_ in NAMES:
        kb.add_alias(name, [entity], [1], type_=type_)
    return kb


def make_nlp(**config: object) -> Tuple[Language, FastBioLinker]:
    nlp = spacy.blank("en")
    linker = nlp.add_pipe("fastbioner_linker", config=config)
    assert isinstance(linker, FastBioLinker)
    linker.set_kb(make_kb())
    return nlp, linker


def with_ents(nlp: Language, text: str, ents: List[Tuple[str, str]]) -> Doc:
    """A doc whose entities are the first occurrences of the given (text, label)."""
    doc = nlp.make_doc(text)
    spans = []
    for ent_text, label in ents:
        start = text.index(ent_text)
        span = doc.char_span(start, start + len(ent_text), label=label)
        assert span is not None, ent_text
        spans.append(span)
    doc.ents = spans
    return doc


def links(doc: Doc) -> List[Tuple[str, str]]:
    return [(ent.text, ent.kb_id_) for ent in doc.ents]


@pytest.mark.parametrize(
    "text,parts",
    [
        ("breast and ovarian cancer", ["breast cancer", "ovarian cancer"]),
        ("colon, rectal and skin tumours", ["colon tumours", "rectal tumours", "skin tumours"]),
        ("breast and/or ovarian cancer", ["breast cancer", "ovarian cancer"]),
        ("breast/ovarian cancer", ["breast cancer", "ovarian cancer"]),
        ("breast cancer and ovarian cancer", ["breast cancer", "ovarian cancer"]),
        ("breast and ovary", []),  # the last conjunct has no head to share
        ("ovarian cancer", []),
        ("LEF/TCF", []),
    ],
)
def test_split_composite(text: str, parts: List[str]) -> None:
    assert split_composite(text) == parts


def test_links_exact_and_label_restricts_candidates() -> None:
    nlp, _ = make_nlp()
    doc = nlp(with_ents(nlp, "A cold and cold lithium.", [("A cold", "Disease"), ("lithium", "Chemical")]))
    assert links(doc)[1] == ("lithium", "D008094")
    doc = nlp(with_ents(nlp, "cold remedies: cold", [("cold", "Disease")]))
    assert doc.ents[0].kb_id_ == "D003139" and doc.ents[0]._.kb_score == 1.0
    doc = nlp(with_ents(nlp, "cold remedies: cold", [("cold", "Chemical")]))
    assert doc.ents[0].kb_id_ == "D999999"
    assert [ent.label_ for ent in doc.ents] == ["Chemical"]  # labels kept


def test_below_threshold_stays_nil() -> None:
    nlp, _ = make_nlp(threshold=0.9, doc_consistency=False)
    doc = nlp(
        with_ents(
            nlp,
            "Breast cancers and breast carcinoma and zzzz.",
            [("Breast cancers", "Disease"), ("breast carcinoma", "Disease"), ("zzzz", "Disease")],
        )
    )
    assert links(doc) == [("Breast cancers", "D001943"), ("breast carcinoma", ""), ("zzzz", "")]
    assert 0.0 < doc.ents[1]._.kb_score < 0.9 and doc.ents[2]._.kb_score == 0.0
    nlp, _ = make_nlp(threshold=0.3)
    doc = nlp(with_ents(nlp, "breast carcinoma", [("breast carcinoma", "Disease")]))
    assert links(doc) == [("breast carcinoma", "D001943")]


def test_a_variant_of_the_mention_links() -> None:
    # The salt's ion left out ("lithium citrate" -> "lithium"), the carcinoma of a site as its
    # neoplasm: exact matches of variants, above the cosine threshold where 3-grams fall short.
    nlp, linker = make_nlp(doc_consistency=False)
    text = "lithium citrate and ovarian carcinoma"
    doc = nlp(with_ents(nlp, text, [("lithium citrate", "Chemical"), ("ovarian carcinoma", "Disease")]))
    assert links(doc) == [("lithium citrate", "D008094"), ("ovarian carcinoma", "D010051")]
    assert linker.kb.get_candidates_batch(["lithium citrate"], "Chemical")[0][0].match == "variant"


def test_composite_mentions_get_one_identifier_per_concept() -> None:
    nlp, _ = make_nlp()
    doc = nlp(with_ents(nlp, "Breast and ovarian cancer in families.", [("Breast and ovarian cancer", "Disease")]))
    assert links(doc) == [("Breast and ovarian cancer", "D001943|D010051")]
    nlp, _ = make_nlp(split_composites=False)
    doc = nlp(with_ents(nlp, "Breast and ovarian cancer in families.", [("Breast and ovarian cancer", "Disease")]))
    assert doc.ents[0].kb_id_ != "D001943|D010051"


def test_composite_the_kb_holds_whole_stays_whole() -> None:
    nlp, linker = make_nlp()
    linker.kb.add_alias("breast and ovarian cancer", ["D061325"], [1], type_="Disease")
    doc = nlp(with_ents(nlp, "breast and ovarian cancer", [("breast and ovarian cancer", "Disease")]))
    assert doc.ents[0].kb_id_ == "D061325"


def test_short_form_takes_its_long_forms_concept(monkeypatch: pytest.MonkeyPatch) -> None:
    nlp, _ = make_nlp()
    text = "Carriers of adenomatous polyposis coli (XYZ) genes; XYZ again."
    doc = with_ents(nlp, text, [("adenomatous polyposis coli", "Disease")])
    xyz = [i for i, token in enumerate(doc) if token.text == "XYZ"]
    long_form = doc.ents[0]
    doc.ents = [long_form, Span(doc, xyz[1], xyz[1] + 1, label="Disease")]

    def stand_in(doc: Doc) -> List[Tuple[Span, Span]]:
        return [(doc[i : i + 1], doc[long_form.start : long_form.end]) for i in xyz]

    monkeypatch.setattr(linker_module, "find_abbreviations", stand_in)
    assert links(nlp(doc)) == [("adenomatous polyposis coli", "D011125"), ("XYZ", "D011125")]
    nlp_off, _ = make_nlp(resolve_abbreviations=False)
    assert links(nlp_off(doc))[1] == ("XYZ", "")


def test_short_form_with_the_real_detector() -> None:
    nlp, _ = make_nlp()
    text = "Mutations cause adenomatous polyposis coli (APC). APC is inherited."
    doc = with_ents(nlp, text, [("adenomatous polyposis coli", "Disease")])
    apc = [i for i, token in enumerate(doc) if token.text == "APC"]
    doc.ents = list(doc.ents) + [Span(doc, i, i + 1, label="Disease") for i in apc]
    assert [kb_id for _, kb_id in links(nlp(doc))] == ["D011125"] * 3


def test_reads_the_abbreviation_components_spans(monkeypatch: pytest.MonkeyPatch) -> None:
    nlp = spacy.blank("en")
    nlp.add_pipe("fastbioner_abbreviations", config={"make_consistent": False})
    linker = nlp.add_pipe("fastbioner_linker")
    linker.set_kb(make_kb())

    def not_again(doc: Doc) -> List[Tuple[Span, Span]]:
        raise AssertionError("the linker searched for abbreviations the component had found")

    monkeypatch.setattr(linker_module, "find_abbreviations", not_again)
    text = "Mutations cause adenomatous polyposis coli (APC). APC is inherited."
    doc = with_ents(nlp, text, [("adenomatous polyposis coli", "Disease")])
    apc = [i for i, token in enumerate(doc) if token.text == "APC"]
    doc.ents = list(doc.ents) + [Span(doc, i, i + 1, label="Disease") for i in apc]
    for _, component in nlp.pipeline:
        doc = component(doc)
    assert [kb_id for _, kb_id in links(doc)] == ["D011125"] * 3


def test_default_threshold_depends_on_the_ranker() -> None:
    _, linker = make_nlp()
    assert linker.threshold == linker_module.COSINE_THRESHOLD
    linker.kb.ranker = {"coef": [0.0] * len(FEATURES), "intercept": [0.0]}
    assert linker.threshold == linker_module.RANKED_THRESHOLD
    linker.cfg["threshold"] = 0.5
    assert linker.threshold == 0.5


def test_pipe_equals_call_and_empty_docs() -> None:
    nlp, _ = make_nlp()
    texts = ["breast cancer here", "no entities", "lithium and cold"]
    ents = [[("breast cancer", "Disease")], [], [("lithium", "Chemical"), ("cold", "Disease")]]
    one = [links(nlp(with_ents(nlp, t, e))) for t, e in zip(texts, ents)]
    linker = nlp.get_pipe("fastbioner_linker")
    many = [links(doc) for doc in linker.pipe((with_ents(nlp, t, e) for t, e in zip(texts, ents)), batch_size=2)]
    assert one == many == [[("breast cancer", "D001943")], [], [("lithium", "D008094"), ("cold", "D003139")]]
    assert links(nlp("")) == []


def test_cache_forgets_when_names_are_added() -> None:
    nlp, linker = make_nlp()
    assert links(nlp(with_ents(nlp, "zzzz", [("zzzz", "Disease")]))) == [("zzzz", "")]
    linker.kb.add_alias("zzzz", ["D000001"], [1], type_="Disease")
    assert links(nlp(with_ents(nlp, "zzzz", [("zzzz", "Disease")]))) == [("zzzz", "D000001")]


def test_empty_kb_links_nothing() -> None:
    nlp = spacy.blank("en")
    nlp.add_pipe("fastbioner_linker")
    doc = nlp(with_ents(nlp, "breast cancer", [("breast cancer", "Disease")]))
    assert links(doc) == [("breast cancer", "")]


def test_settings_are_checked() -> None:
    with pytest.raises(ValueError, match="threshold: expected a value in"):
        make_nlp(threshold=1.5)
    with pytest.raises(ValueError, match="n_candidates: expected an integer >= 1"):
        make_nlp(n_candidates=0)


def test_initialize_loads_the_kb(tmp_path: Path) -> None:
    make_kb().to_disk(tmp_path / "kb")
    nlp = spacy.blank("en")
    nlp.add_pipe("fastbioner_linker")
    nlp.config["initialize"]["components"]["fastbioner_linker"] = {"kb_path": str(tmp_path / "kb")}
    nlp.initialize()
    assert links(nlp(with_ents(nlp, "lithium", [("lithium", "Chemical")]))) == [("lithium", "D008094")]


def test_score_reports_nel_prf() -> None:
    nlp, _ = make_nlp()
    predicted = with_ents(nlp, "breast cancer and lithium", [("breast cancer", "Disease"), ("lithium", "Chemical")])
    reference = predicted.copy()
    reference.ents = [
        Span(reference, 0, 2, label="Disease", kb_id="D001943"),
        Span(reference, 3, 4, label="Chemical", kb_id="D000001"),
    ]
    scores = nlp.evaluate([Example(predicted, reference)])
    assert scores["nel_micro_p"] == pytest.approx(0.5) and scores["nel_micro_r"] == pytest.approx(0.5)


def test_round_trips_disk_and_bytes_without_pickle(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    nlp, _ = make_nlp(threshold=0.6)
    text = "Breast and ovarian cancer, cold and lithium."
    ents = [("Breast and ovarian cancer", "Disease"), ("cold", "Disease"), ("lithium", "Chemical")]
    expected = links(nlp(with_ents(nlp, text, ents)))
    nlp.to_disk(tmp_path / "pipeline")
    data = nlp.to_bytes()
    empty = spacy.blank("en")
    empty.add_pipe("fastbioner_linker")
    empty.to_disk(tmp_path / "uninitialized")

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("pickle used while loading")

    monkeypatch.setattr(pickle, "loads", refuse)
    monkeypatch.setattr(pickle, "load", refuse)
    loaded = spacy.load(tmp_path / "pipeline")
    assert loaded.get_pipe("fastbioner_linker").cfg["threshold"] == 0.6
    assert links(loaded(with_ents(loaded, text, ents))) == expected
    from_bytes = spacy.blank("en")
    from_bytes.add_pipe("fastbioner_linker")
    from_bytes.from_bytes(data)
    assert links(from_bytes(with_ents(from_bytes, text, ents))) == expected
    reloaded = spacy.load(tmp_path / "uninitialized")
    assert links(reloaded(with_ents(reloaded, "cold", [("cold", "Disease")]))) == [("cold", "")]


@pytest.mark.parametrize("consistent", [True, False])
def test_doc_consistency_links_a_nil_entity_to_a_concept_of_the_doc(consistent: bool) -> None:
    nlp, linker = make_nlp(doc_consistency=consistent)
    linker.kb.add_alias("prostate cancer", ["D011471"], [1], type_="Disease")
    # A ranker that weighs the cosine alone: an exact match scores 0.95,
    # "prostate adenocarcinoma" against "prostate cancer" less than the threshold, but more than
    # DOC_FLOOR.
    linker.kb.ranker = {"coef": [10.0] + [0.0] * (len(FEATURES) - 1), "intercept": [-7.0]}
    text = "prostate cancer and prostate adenocarcinoma"
    doc = nlp(with_ents(nlp, text, [("prostate cancer", "Disease"), ("prostate adenocarcinoma", "Disease")]))
    top = linker.kb.get_candidates_batch(["prostate adenocarcinoma"], "Disease")[0][0]
    assert linker_module.DOC_FLOOR <= top.score < linker.threshold  # alone, it stays NIL
    assert links(doc) == [("prostate cancer", "D011471"), ("prostate adenocarcinoma", "D011471" if consistent else "")]


def test_doc_consistency_needs_another_entity() -> None:
    nlp, _ = make_nlp()
    doc = nlp(with_ents(nlp, "prostate adenocarcinoma", [("prostate adenocarcinoma", "Disease")]))
    assert links(doc) == [("prostate adenocarcinoma", "")]
