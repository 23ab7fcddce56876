"""The fastbioner_ner component: learning, decoding, serialisation."""

import subprocess
import sys
import warnings

import numpy
import pytest
import spacy
from helpers import make_examples, make_pipeline, synthetic_sentences, train_pipeline
from spacy.tokens import Doc
from spacy.training import Example
from spacy_transformers.data_classes import TransformerData
from thinc.api import Model

from spacy_fastbioner.pipeline.ner import FastBioNER

TEXTS = [
    "the patients with breast cancer were treated with aspirin",
    "naloxone and clonidine in mice with hereditary colitis",
    "",
    "   ",
    "we report that the study showed no signs of diabetes",
]


def ents(doc):
    return [(e.start_char, e.end_char, e.label_) for e in doc.ents]


@pytest.fixture(scope="module")
def trained(tiny_bert):
    nlp = make_pipeline(tiny_bert)
    train = make_examples(nlp, synthetic_sentences(200, seed=1))
    return train_pipeline(nlp, train, epochs=5)


def test_factory_found_through_entry_point():
    """A fresh process finds the factory without importing the plugin."""
    code = (
        "import spacy, sys\n"
        "nlp = spacy.blank('en')\n"
        "nlp.add_pipe('fastbioner_ner')\n"
        "assert 'spacy_fastbioner' in sys.modules\n"
        "print(nlp.pipe_names)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=600)
    assert "fastbioner_ner" in out.stdout


def test_labels_from_data_and_tags(trained):
    ner = trained.get_pipe("fastbioner_ner")
    assert ner.labels == ("Chemical", "Disease")
    assert ner.tags == ("O", "B-Chemical", "I-Chemical", "B-Disease", "I-Disease")
    assert "labels" not in trained.config["components"]["fastbioner_ner"]


def test_labels_argument():
    nlp = spacy.blank("en")
    nlp.add_pipe(
        "fastbioner_ner",
        config={
            "model": {
                "tok2vec": {
                    "@architectures": "spacy.HashEmbedCNN.v2",
                    "width": 16,
                    "depth": 1,
                    "embed_size": 50,
                    "window_size": 1,
                    "maxout_pieces": 2,
                    "subword_features": False,
                    "pretrained_vectors": None,
                }
            }
        },
    )
    ner = nlp.get_pipe("fastbioner_ner")
    ner.initialize(lambda: [Example.from_dict(nlp.make_doc("a b"), {})], nlp=nlp, labels=["Gene"])
    assert ner.tags == ("O", "B-Gene", "I-Gene")
    with pytest.raises(ValueError, match="initialized already"):
        ner.add_label("Chemical")


def test_learns_synthetic_task(trained):
    dev = make_examples(trained, synthetic_sentences(60, seed=2))
    scores = trained.evaluate(dev)
    assert scores["ents_f"] >= 0.9
    assert set(scores["ents_per_type"]) == {"Chemical", "Disease"}


def test_predict_proba_and_logits(trained):
    ner = trained.get_pipe("fastbioner_ner")
    docs = [trained.tokenizer(t) for t in TEXTS]
    trained.get_pipe("transformer").set_annotations(docs, trained.get_pipe("transformer").predict(docs))
    probs = ner.predict_proba(docs)
    flat = ner.predict_proba(docs, temperature=4.0)
    for doc, p, f in zip(docs, probs, flat):
        assert p.shape == (len(doc), len(ner.tags))
        numpy.testing.assert_allclose(p.sum(axis=1), 1.0, rtol=1e-5)
        if len(doc):
            assert (f.max(axis=1) <= p.max(axis=1) + 1e-6).all()


def test_never_raises_and_keeps_text(trained):
    texts = TEXTS + ["\n\n", "cancer\tcancer\n aspirin", "x" * 3000, "😀 cancer 😀", "\x00\x01 aspirin"]
    docs = list(trained.pipe(texts, batch_size=3))
    assert [d.text for d in docs] == texts
    assert docs[0].ents and docs[2].ents == ()


def test_serialisation_round_trip(trained, tmp_path):
    expected = [ents(d) for d in trained.pipe(TEXTS)]
    assert any(expected)
    trained.to_disk(tmp_path / "nlp")
    loaded = spacy.load(tmp_path / "nlp")
    assert [ents(d) for d in loaded.pipe(TEXTS)] == expected
    from_bytes = make_pipeline_from_config(trained).from_bytes(trained.to_bytes())
    assert [ents(d) for d in from_bytes.pipe(TEXTS)] == expected


def make_pipeline_from_config(nlp):
    return spacy.util.load_model_from_config(nlp.config, auto_fill=False, validate=False)


def test_component_serialisation_before_initialize(tiny_bert):
    nlp = make_pipeline(tiny_bert)
    ner = nlp.get_pipe("fastbioner_ner")
    data = ner.to_bytes()
    fresh = make_pipeline(tiny_bert).get_pipe("fastbioner_ner")
    fresh.from_bytes(data)
    assert fresh.labels == ()


def test_gold_targets_ignore_missing_and_misaligned(trained):
    ner: FastBioNER = trained.get_pipe("fastbioner_ner")
    words = ["breast", "cancer", "in", "mice"]
    predicted = Doc(trained.vocab, words=words)
    # Unannotated reference: no gold tags at all.
    assert ner._gold_targets(Example(predicted, Doc(trained.vocab, words=words))).sum() == 0
    # Partially annotated: an empty tag is missing, not O.
    ref = Doc(trained.vocab, words=words, ents=["B-Disease", "I-Disease", "O", ""])
    targets = ner._gold_targets(Example(predicted, ref))
    assert targets.sum(axis=1).tolist() == [1.0, 1.0, 1.0, 0.0]
    assert [ner.tags[i] for i in targets[:3].argmax(axis=1)] == ["B-Disease", "I-Disease", "O"]


def test_update_loss_decreases(tiny_bert):
    nlp = make_pipeline(tiny_bert)
    train = make_examples(nlp, synthetic_sentences(32, seed=3))
    optimizer = nlp.initialize(lambda: train)
    optimizer.learn_rate = 1e-3
    history = []
    for _ in range(15):
        losses = {}
        nlp.update(train, sgd=optimizer, losses=losses)
        history.append(losses["fastbioner_ner"])
    assert history[-1] < history[0] / 2


def test_doc_without_transformer_output_is_outside_with_one_warning(trained):
    """A doc whose transformer output is empty (here: the transformer ran on
    the other docs only) comes back as logits that make every token O by a
    wide margin, even at a high temperature; the component warns once."""
    ner = trained.get_pipe("fastbioner_ner")
    trf = trained.get_pipe("transformer")
    docs = [trained.make_doc("breast cancer in mice"), trained.make_doc("aspirin and naloxone")]
    trf.set_annotations(docs[:1], trf.predict(docs[:1]))
    docs[1]._.trf_data = TransformerData.empty()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        scores = ner.predict(docs)
        ner.predict(docs)
    assert len([w for w in caught if "no output" in str(w.message)]) == 1
    assert scores[1].shape == (3, len(ner.tags))
    for temperature in (1.0, 2.0, 4.0):
        probs = ner.predict_proba(docs, temperature=temperature)[1]
        assert (probs[:, 0] > 0.999).all()
    ner.set_annotations(docs, scores)
    assert docs[1].ents == ()


def test_scores_of_the_wrong_shape_are_an_error(trained):
    """Only a doc without transformer output falls back to all-O; a table
    with the wrong number of tags is a bug, and says so."""
    ner = trained.get_pipe("fastbioner_ner")

    def forward(model, docs, is_train):
        return [model.ops.alloc2f(len(doc), len(ner.tags) + 1) for doc in docs], lambda d: []

    broken = FastBioNER(trained.vocab, Model("wrong_width", forward), "broken")
    broken.cfg["labels"] = list(ner.labels)
    with pytest.raises(ValueError, match=r"shape \(4, 6\) for a doc of 4 tokens: expected \(4, 5\)"):
        broken.predict([trained.make_doc("breast cancer in mice")])


def test_first_wordpiece_fast_path_equals_the_model(trained):
    """At inference the default model's token vectors are read straight from
    `doc._.trf_data` (`first_wordpiece_vectors`): the same logits as the
    model's own listener, pooling and head, also for long docs whose strided
    windows overlap (the best-window alignment), and empty docs."""
    from spacy_fastbioner.ml.pooling import first_wordpiece_vectors, reads_first_wordpiece
    from spacy_fastbioner.ml.windows import best_windows

    ner = trained.get_pipe("fastbioner_ner")
    assert reads_first_wordpiece(ner.model.layers[0])
    long_text = " ".join(TEXTS[0].split() * 12)  # past the window of 48 tokens, stride 32
    docs = [trained.make_doc(text) for text in TEXTS + [long_text, "β-catenin (5-FU) naloxone,x"]]
    trf = trained.get_pipe("transformer")
    trf.set_annotations(docs, trf.predict(docs))
    assert len(docs[-2]._.trf_data.wordpieces) > 1  # several windows
    with best_windows(docs):
        expected = ner.model.predict(docs)
        found = ner._predict_first_wordpiece(docs)
    assert found is not None and len(found) == len(expected)
    for f, e in zip(found, expected):
        assert f.shape == e.shape
        numpy.testing.assert_allclose(f, e, rtol=1e-6, atol=1e-6)
    assert any(e.size for e in expected)
    # Without the empty docs (a batch of docs that all have tokens).
    with best_windows(docs[3:]):
        for f, e in zip(ner._predict_first_wordpiece(docs[3:]), ner.model.predict(docs[3:])):
            numpy.testing.assert_allclose(f, e, rtol=1e-6, atol=1e-6)
    # A doc whose transformer output is empty, as trfs2arrays gives it; no trf_data: the general path.
    docs[1]._.trf_data = TransformerData.empty()
    assert first_wordpiece_vectors([doc._.trf_data for doc in docs])[1].shape == (0, 0)
    assert first_wordpiece_vectors([doc._.trf_data for doc in docs[:1]] + [None]) is None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert [s.shape for s in ner.predict(docs)] == [(len(doc), len(ner.tags)) for doc in docs]


def test_fast_path_is_recognised_by_attributes_not_layer_names(trained):
    """The default model is recognised by the attributes that its builders
    set (`TransformerTagger.v1`, `first_wordpiece.v1`), not by thinc's
    generated layer names: renamed layers still take the fast path, and a
    model without the attribute takes the general path with the same output."""
    from spacy_fastbioner.ml.tagger import FAST_PATH_ATTR

    ner = trained.get_pipe("fastbioner_ner")
    docs = [trained.make_doc(text) for text in TEXTS]
    trf = trained.get_pipe("transformer")
    trf.set_annotations(docs, trf.predict(docs))
    expected = ner.predict(docs)
    layers = [ner.model, *ner.model.layers, *ner.model.layers[0].layers, *ner.model.layers[0].layers[1].layers]
    names = [layer.name for layer in layers]
    try:
        for k, layer in enumerate(layers):
            layer.name = f"renamed-{k}"
        assert ner._predict_first_wordpiece(docs) is not None
        for found, exp in zip(ner.predict(docs), expected):
            assert found.tobytes() == exp.tobytes()
    finally:
        for layer, name in zip(layers, names):
            layer.name = name
    del ner.model.attrs[FAST_PATH_ATTR]
    try:
        assert ner._predict_first_wordpiece(docs) is None
        for found, exp in zip(ner.predict(docs), expected):
            assert found.shape == exp.shape
            numpy.testing.assert_allclose(found, exp, rtol=1e-6, atol=1e-6)
    finally:
        ner.model.attrs[FAST_PATH_ATTR] = True


def test_set_annotations_writes_the_decoded_entities(trained):
    """The entities that set_annotations writes (one `from_array` per doc)
    are those of `bio_to_spans` on each doc's decoded tags."""
    from spacy_fastbioner.pipeline.decoding import bio_to_spans, log_softmax, viterbi

    ner = trained.get_pipe("fastbioner_ner")
    docs = [trained.make_doc(text) for text in TEXTS + ["cancer cancer colitis and aspirin"]]
    rng = numpy.random.default_rng(0)
    scores = [rng.normal(size=(len(doc), len(ner.tags))).astype("f") * 4 for doc in docs]
    scores[-1][:, :] = -5.0
    scores[-1][:, ner.tags.index("O")] = 5.0
    # Greedy tags O, I-Disease break the constraint; the best valid path is B, I.
    scores[-1][0, ner.tags.index("B-Disease")] = 4.0
    scores[-1][1, ner.tags.index("I-Disease")] = 9.0
    ner.set_annotations(docs, scores)
    start, trans = ner._get_constraints()
    for doc, table in zip(docs, scores):
        tags = [ner.tags[i] for i in viterbi(log_softmax(table), start, trans)]
        assert [(e.start, e.end, e.label_) for e in doc.ents] == bio_to_spans(tags)
        assert all(token.ent_kb_id == 0 and token.ent_iob_ in ("B", "I", "O") for token in doc)
    assert [(e.start, e.end, e.label_) for e in docs[-1].ents] == [(0, 2, "Disease")]


def test_windows_are_checked_against_the_encoders_positions(tmp_path):
    """Issue 27 item 13: a tokenizer that sets no model_max_length gives
    spacy-transformers no bound to truncate a window at. At initialize, a
    window that cannot fit the encoder's position embeddings is an error that
    says what fits; otherwise the tokenizer gets the encoder's positions as
    its limit, with a warning, so that a window of many wordpieces is
    truncated instead of indexing past the embeddings."""
    from helpers import make_tiny_bert, tiny_transformer_config

    bert = make_tiny_bert(tmp_path / "bert", n_layers=1, max_positions=32)

    def pipeline(window: int, stride: int) -> spacy.language.Language:
        nlp = spacy.blank("en")
        nlp.add_pipe("transformer", config=tiny_transformer_config(bert, window=window, stride=stride))
        nlp.add_pipe("fastbioner_ner")
        return nlp

    nlp = pipeline(48, 32)
    examples = make_examples(nlp, synthetic_sentences(4, seed=1))
    with pytest.raises(ValueError, match=r"windows of 48 tokens: .* needs 50 positions, .* has 32 .* window <= 30"):
        nlp.initialize(lambda: examples)
    nlp = pipeline(24, 16)
    with pytest.warns(UserWarning, match=r"sets no model_max_length, over the encoder's 32 positions: set to 32"):
        nlp.initialize(lambda: examples)
    tokenizer = nlp.get_pipe("transformer").model.tokenizer
    assert tokenizer.model_max_length == 32
    # 24 tokens of several wordpieces each: a window of over 32 wordpieces.
    doc = nlp(" ".join(["qzxvk"] * 40))
    assert max(doc._.trf_data.wordpieces.lengths) <= 32 < 24 * len(tokenizer.tokenize("qzxvk"))
    # The limit is kept when the pipeline is saved.
    loaded = type(nlp).from_config(nlp.config).from_bytes(nlp.to_bytes())
    assert loaded.get_pipe("transformer").model.tokenizer.model_max_length == 32


def test_preset_entities_are_kept_as_spacys_ner_keeps_them(trained):
    """Issue 27 item 14: entities already on a doc (B or I, blocked spans
    included) are kept with their label, knowledge-base and entity ids, even
    a label the component does not predict; new entities are added only
    where they overlap none, and never extend one; tokens preset to O are
    predicted again. spaCy's `ner` does the same (the `is_valid` of its moves,
    spacy/pipeline/_parser_internals/ner.pyx)."""
    from spacy.tokens import Span

    from spacy_fastbioner.pipeline.decoding import bio_to_spans, log_softmax, viterbi

    ner = trained.get_pipe("fastbioner_ner")
    words = ["breast", "cancer", "in", "mice", "given", "aspirin", "and", "naloxone"]
    doc = Doc(trained.vocab, words=words)
    gene = Span(doc, 1, 2, label="GENE", kb_id="HGNC:1", span_id="rule-1")
    doc.set_ents([gene], blocked=[Span(doc, 3, 4)], outside=[Span(doc, 7, 8)], default="missing")
    table = numpy.full((len(words), len(ner.tags)), -5.0, dtype="f")
    table[:, ner.tags.index("O")] = 5.0
    for i, tag in [(0, "B-Disease"), (1, "I-Disease"), (2, "I-Disease"), (3, "B-Disease")]:
        table[i, ner.tags.index(tag)] = 9.0
    for i in (5, 7):
        table[i, ner.tags.index("B-Chemical")] = 9.0
    plain = Doc(trained.vocab, words=words)
    ner.set_annotations([doc, plain], [table, table.copy()])
    assert [(e.start, e.end, e.label_) for e in doc.ents] == [
        (0, 1, "Disease"),  # cut where the preset entity starts
        (1, 2, "GENE"),
        (5, 6, "Chemical"),
        (7, 8, "Chemical"),  # preset O: predicted again
    ]
    assert (doc[1].ent_kb_id_, doc[1].ent_id_) == ("HGNC:1", "rule-1")
    assert (doc[2].ent_iob_, doc[3].ent_iob, doc[3].ent_type) == ("O", 3, 0)  # mice stays blocked
    start, trans = ner._get_constraints()
    expected = bio_to_spans([ner.tags[i] for i in viterbi(log_softmax(table), start, trans)])
    assert expected == [(0, 3, "Disease"), (3, 4, "Disease"), (5, 6, "Chemical"), (7, 8, "Chemical")]
    assert [(e.start, e.end, e.label_) for e in plain.ents] == expected
    # Run again on its own output: nothing changes.
    before = [(e.start, e.end, e.label_, e.kb_id_, e.id_) for e in doc.ents]
    ner.set_annotations([doc], [table])
    assert [(e.start, e.end, e.label_, e.kb_id_, e.id_) for e in doc.ents] == before


def test_an_entity_ruler_before_the_component_keeps_its_entities(trained):
    """An entity ruler's entities survive `fastbioner_ner`, as they survive
    spaCy's `ner`, and the component's own entities elsewhere are added."""
    text = "the patients with breast cancer were treated with aspirin"
    alone = {(e.text, e.label_) for e in trained(text).ents}
    assert ("breast cancer", "Disease") in alone
    ruler = trained.add_pipe("entity_ruler", before="fastbioner_ner")
    try:
        ruler.add_patterns([{"label": "DRUG", "pattern": "aspirin", "id": "drug-1"}])
        doc = trained(text)
    finally:
        trained.remove_pipe("entity_ruler")
    assert [(e.text, e.label_, e.id_) for e in doc.ents if e.label_ == "DRUG"] == [("aspirin", "DRUG", "drug-1")]
    assert ("breast cancer", "Disease") in {(e.text, e.label_) for e in doc.ents}


def test_preset_entities_get_no_confidence_and_new_ones_do(trained):
    """With `store_confidence` on, a kept entity of a label the component does
    not predict must not break it, and gets no confidence of the component's."""
    from spacy.tokens import Span

    ner = trained.get_pipe("fastbioner_ner")
    words = ["breast", "cancer", "in", "mice", "given", "aspirin"]
    doc = Doc(trained.vocab, words=words)
    doc.set_ents([Span(doc, 3, 4, label="SPECIES")], default="missing")
    table = numpy.full((len(words), len(ner.tags)), -5.0, dtype="f")
    table[:, ner.tags.index("O")] = 5.0
    table[5, ner.tags.index("B-Chemical")] = 9.0
    stored = ner.cfg.get("store_confidence")
    ner.cfg["store_confidence"] = True
    try:
        ner.set_annotations([doc], [table])
    finally:
        ner.cfg["store_confidence"] = stored
    confidence = {e.label_: e._.fastbioner_confidence for e in doc.ents}
    assert confidence["SPECIES"] is None
    assert 0.9 < confidence["Chemical"] <= 1.0
