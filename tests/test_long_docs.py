"""Long documents: spacy-transformers' strided windows cover texts far over the
transformer's 512 wordpieces, and no entity is lost or cut at a window seam.

A tiny pipeline with very small windows (16 tokens every 12) makes seams
frequent: entities predicted on each sentence alone must be exactly those
predicted on all sentences joined into one doc of more than 3000 tokens.
"""

import random
from typing import List, Set, Tuple

import numpy
import pytest
import spacy
from helpers import make_examples, make_tiny_bert, synthetic_sentences, tiny_transformer_config
from spacy.language import Language
from spacy.tokens import Doc
from spacy.training import Example
from spacy.util import fix_random_seed
from spacy_transformers.data_classes import TransformerData, WordpieceBatch
from spacy_transformers.span_getters import get_strided_spans
from thinc.types import Ragged

from spacy_fastbioner.ml.windows import best_window_alignment

WINDOW, STRIDE = 16, 12
CharSpans = Set[Tuple[int, int, str]]


def separated_sentences(n: int, seed: int) -> List[Tuple[List[str], List[str]]]:
    """Synthetic sentences ending in "." whose entities are never adjacent, so
    that every tag follows from a word and its left neighbour (adjacent
    "cancer cancer" would be B B or B I by chance)."""
    sentences = []
    for words, tags in synthetic_sentences(n, seed=seed):
        new_words: List[str] = []
        new_tags: List[str] = []
        for word, tag in zip(words, tags):
            if tag.startswith("B-") and new_tags and new_tags[-1] != "O":
                new_words.append("and")
                new_tags.append("O")
            new_words.append(word)
            new_tags.append(tag)
        sentences.append((new_words + ["."], new_tags + ["O"]))
    return sentences


def char_ents(doc: Doc, offset: int = 0) -> CharSpans:
    return {(e.start_char + offset, e.end_char + offset, e.label_) for e in doc.ents}


@pytest.fixture(scope="module")
def nlp(tmp_path_factory) -> Language:
    """Trained until every held-out sentence is tagged exactly (at most 8
    epochs; 3 suffice with these seeds)."""
    bert = make_tiny_bert(tmp_path_factory.mktemp("bert"), n_layers=2)
    nlp = spacy.blank("en")
    nlp.add_pipe("transformer", config=tiny_transformer_config(bert, window=WINDOW, stride=STRIDE))
    nlp.add_pipe("fastbioner_ner")
    train = make_examples(nlp, separated_sentences(200, seed=1))
    dev = make_examples(nlp, separated_sentences(60, seed=2))
    fix_random_seed(0)
    optimizer = nlp.initialize(lambda: train)
    optimizer.learn_rate = 1e-3
    for _ in range(8):
        random.shuffle(train)
        for i in range(0, len(train), 4):
            nlp.update(train[i : i + 4], sgd=optimizer, drop=0.1)
        predicted = nlp.pipe([Doc(nlp.vocab, words=[t.text for t in eg.reference]) for eg in dev])
        if all(char_ents(doc) == char_ents(eg.reference) for doc, eg in zip(predicted, dev)):
            break
    return nlp


@pytest.fixture(scope="module")
def sentences() -> List[str]:
    texts = [" ".join(words) for words, _ in separated_sentences(400, seed=7)]
    assert sum(len(text.split()) for text in texts) > 3000
    return texts


def test_long_text_is_processed_whole(nlp: Language, sentences: List[str]) -> None:
    text = " ".join(sentences)
    doc = nlp(text)
    assert doc.text == text and len(doc) > 3000
    trf_data = doc._.trf_data
    n_windows = len(trf_data.wordpieces)
    assert sum(trf_data.wordpieces.lengths) > 6 * 512
    assert n_windows == -(-(len(doc) - WINDOW) // STRIDE) + 1
    # Every token has wordpieces, the last ones included.
    assert (trf_data.align.lengths > 0).all()
    assert any(ent.start > 3000 for ent in doc.ents)


def test_long_doc_entities_match_sentence_by_sentence(nlp: Language, sentences: List[str]) -> None:
    expected: CharSpans = set()
    offset = 0
    for doc in nlp.pipe(sentences, batch_size=64):
        expected |= char_ents(doc, offset)
        offset += len(doc.text) + 1
    long_doc = nlp(" ".join(sentences))
    assert char_ents(long_doc) == expected
    # The comparison covers seams and the far end of the doc: multi-token
    # entities across the start or the end of a window, and entities beyond
    # token 3000.
    edges = {k * STRIDE + d for k in range(len(long_doc) // STRIDE + 1) for d in (0, WINDOW)}
    across = [ent for ent in long_doc.ents if any(ent.start < edge < ent.end for edge in edges)]
    assert len(across) >= 5
    assert sum(ent.start > 3000 for ent in long_doc.ents) >= 20


def test_long_doc_finds_the_gold_entities(nlp: Language) -> None:
    sents = separated_sentences(400, seed=7)
    words = [w for sent_words, _ in sents for w in sent_words]
    gold = Doc(nlp.vocab, words=words, ents=[t for _, tags in sents for t in tags])
    predicted = nlp(Doc(nlp.vocab, words=words))
    found = char_ents(predicted) & char_ents(gold)
    assert len(found) >= 0.98 * len(gold.ents) and len(found) >= 0.98 * len(predicted.ents)


def make_trf_data(n_tokens: int, window: int, stride: int) -> TransformerData:
    """The TransformerData that strided_spans gives a doc of single-wordpiece
    tokens: [CLS] tokens [SEP] per window, padded to the longest window."""
    doc = Doc(spacy.blank("en").vocab, words=["x"] * n_tokens)
    spans = get_strided_spans([doc], window, stride)[0]
    starts = [span.start for span in spans]
    lengths = [len(span) + 2 for span in spans]
    seq_len = max(lengths)
    rows: List[List[int]] = [[] for _ in range(n_tokens)]
    for w, start in enumerate(starts):
        for i in range(start, min(start + window, n_tokens)):
            rows[i].append(w * seq_len + 1 + i - start)
    wordpieces = WordpieceBatch(
        strings=[["x"] * n for n in lengths],
        input_ids=numpy.zeros((len(starts), seq_len), dtype="i"),
        attention_mask=numpy.ones((len(starts), seq_len), dtype="bool"),
        lengths=lengths,
        token_type_ids=None,
    )
    align = Ragged(numpy.array([j for r in rows for j in r], dtype="i"), numpy.array([len(r) for r in rows], dtype="i"))
    return TransformerData(wordpieces=wordpieces, model_output={}, align=align)  # type: ignore[arg-type]


def test_best_window_switches_half_way_through_the_overlap() -> None:
    # Windows of 8 tokens every 4, over 16 tokens: [0, 8), [4, 12), [8, 16).
    trf_data = make_trf_data(16, window=8, stride=4)
    assert len(trf_data.wordpieces) == 3 and trf_data.align.lengths.tolist() == [1] * 4 + [2] * 8 + [1] * 4
    reduced = best_window_alignment(trf_data)
    assert reduced.align.lengths.tolist() == [1] * 16
    seq_len = trf_data.wordpieces.input_ids.shape[1]
    windows = (reduced.align.dataXd // seq_len).tolist()
    assert windows == [0] * 6 + [1] * 4 + [2] * 6

    def contexts(align: Ragged) -> List[int]:
        """Per token, the context of its first wordpiece on its closer side."""
        firsts = align.dataXd[numpy.cumsum(align.lengths) - align.lengths].tolist()
        return [min(j % seq_len, 9 - j % seq_len) for j in firsts]

    # Taking the first window leaves token 7 with no right context but [SEP];
    # the best window leaves half the overlap on each side, plus the special token.
    assert min(contexts(trf_data.align)[4:12]) == 1
    assert min(contexts(reduced.align)[4:12]) == 3


def test_best_window_keeps_single_windows_and_empty_docs() -> None:
    trf_data = make_trf_data(5, window=8, stride=4)
    assert best_window_alignment(trf_data) is trf_data
    empty = TransformerData.empty()
    assert best_window_alignment(empty) is empty


def test_best_window_on_real_alignment_keeps_every_token(nlp: Language, sentences: List[str]) -> None:
    doc = nlp.get_pipe("transformer")(nlp.make_doc(" ".join(sentences[:20])))
    trf_data = doc._.trf_data
    reduced = best_window_alignment(trf_data)
    seq_len = trf_data.wordpieces.input_ids.shape[1]
    lengths = trf_data.wordpieces.lengths
    data, old = reduced.align.dataXd, trf_data.align.dataXd
    assert (reduced.align.lengths > 0).all()
    start = old_start = 0
    for n, n_old in zip(reduced.align.lengths.tolist(), trf_data.align.lengths.tolist()):
        kept, rows = data[start : start + n], old[old_start : old_start + n_old]
        assert len(set((kept // seq_len).tolist())) == 1 and set(kept.tolist()) <= set(rows.tolist())

        def context(js) -> int:
            return max(min(j % seq_len, lengths[j // seq_len] - 1 - j % seq_len) for j in js)

        by_window = {w: [j for j in rows.tolist() if j // seq_len == w] for w in set((rows // seq_len).tolist())}
        assert context(kept.tolist()) == max(context(js) for js in by_window.values())
        start, old_start = start + n, old_start + n_old


def test_predict_leaves_the_transformer_data_alone(nlp: Language, sentences: List[str]) -> None:
    doc = nlp.get_pipe("transformer")(nlp.make_doc(" ".join(sentences[:20])))
    before = doc._.trf_data
    lengths = before.align.lengths.copy()
    nlp.get_pipe("fastbioner_ner")(doc)
    assert doc._.trf_data is before and (doc._.trf_data.align.lengths == lengths).all()
    assert doc.ents


@pytest.fixture(scope="module")
def dropout_free_nlp(tmp_path_factory) -> Language:
    """An initialized (untrained) tiny pipeline whose encoder has no dropout,
    so that its features in training mode equal those at inference."""
    bert = make_tiny_bert(tmp_path_factory.mktemp("bert_no_dropout"), n_layers=1)
    config = tiny_transformer_config(bert, window=WINDOW, stride=STRIDE)
    config["model"]["transformer_config"] = {"hidden_dropout_prob": 0.0, "attention_probs_dropout_prob": 0.0}
    nlp = spacy.blank("en")
    nlp.add_pipe("transformer", config=config)
    nlp.add_pipe("fastbioner_ner")
    examples = make_examples(nlp, separated_sentences(8, seed=3))
    fix_random_seed(0)
    nlp.initialize(lambda: examples)
    return nlp


@pytest.mark.parametrize("method", ["update", "distill"])
def test_training_reads_each_token_from_the_window_that_predict_reads(
    dropout_free_nlp: Language, method: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 27 item 10: `update` and `distill` read a token in the overlap
    of two windows from its best-context window, as `predict` (and hence the
    cached teacher targets) do, so the loss sees the logits that prediction
    gives, on one sentence of several windows."""
    nlp = dropout_free_nlp
    trf, ner = nlp.get_pipe("transformer"), nlp.get_pipe("fastbioner_ner")
    words, tags = [], []
    for sent_words, sent_tags in separated_sentences(12, seed=5):
        words.extend(sent_words[:-1])  # one sentence: no "." between them
        tags.extend(sent_tags[:-1])
    assert len(words) > 3 * WINDOW
    doc = trf(Doc(nlp.vocab, words=words))
    assert len(doc._.trf_data.wordpieces) > 3
    predicted = ner.predict([doc])[0]
    # Reading the first window of each token (the alignment as the
    # transformer gives it) changes the logits: the test can see the rule.
    assert not numpy.allclose(ner.model.predict([doc])[0], predicted, atol=1e-4)

    seen: List[numpy.ndarray] = []
    if method == "update":
        get_loss = ner.get_loss

        def record_loss(examples, scores):  # type: ignore[no-untyped-def]
            seen.append(numpy.array(scores[0]))
            return get_loss(examples, scores)

        monkeypatch.setattr(ner, "get_loss", record_loss)
    else:
        get_ts_loss = ner.get_teacher_student_loss

        def record_loss(teacher_scores, student_scores, **kwargs):  # type: ignore[no-untyped-def]
            seen.append(numpy.array(student_scores[0]))
            return get_ts_loss(teacher_scores, student_scores, **kwargs)

        monkeypatch.setattr(ner, "get_teacher_student_loss", record_loss)
    examples = [Example(Doc(nlp.vocab, words=words), Doc(nlp.vocab, words=words, ents=tags))]
    trf.update(examples, drop=0.0)  # no sgd: the weights stay as they are
    if method == "update":
        ner.update(examples, drop=0.0)
    else:
        ner.distill(None, examples, drop=0.0, teacher_scores=[predicted], soft_weight=1.0)
    assert len(seen) == 1 and seen[0].shape == predicted.shape
    numpy.testing.assert_allclose(seen[0], predicted, rtol=1e-4, atol=1e-5)
