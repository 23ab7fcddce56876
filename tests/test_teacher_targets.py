"""Cached teacher targets, flat memory and multi-sentence docs in the
distillation step."""

import numpy
import pytest
import torch
from helpers import make_examples, make_pipeline, make_tiny_bert, synthetic_sentences
from spacy.tokens import Doc
from spacy.training import Example
from thinc.api import fix_random_seed

from spacy_fastbioner.distill.step import create_distill_step_v2
from spacy_fastbioner.distill.targets import (
    TeacherTargets,
    TeacherTargetsError,
    annotate,
    build_teacher_targets,
    doc_key,
    teacher_identity,
    teacher_logits,
)
from spacy_fastbioner.distill.weights import create_dynamic_weights
from spacy_fastbioner.encoder.sentence_windows import with_sentence_windows
from spacy_fastbioner.encoder.student import make_student

RAW = [(words, ["O"] * len(words)) for words, _ in synthetic_sentences(24, seed=21)]


def references(examples):
    return [eg.reference for eg in examples]


def fresh_docs(nlp, sentences):
    return [Doc(nlp.vocab, words=words) for words, _ in sentences]


@pytest.fixture(scope="module")
def store(trained_teacher, tmp_path_factory):
    """A store of 40 gold and 24 unlabelled sentences, one of them twice."""
    docs = fresh_docs(trained_teacher, synthetic_sentences(40, seed=20) + RAW + RAW[:1])
    path = tmp_path_factory.mktemp("targets") / "store"
    build_teacher_targets(trained_teacher, docs, path, batch_size=16, progress=False)
    return path


def test_store_round_trip(trained_teacher, store):
    targets = TeacherTargets(store)
    assert len(targets) == 64  # the repeated doc is stored once
    assert targets.meta["n_tokens"] == sum(len(words) for words, _ in synthetic_sentences(40, seed=20) + RAW)
    assert targets.teacher == teacher_identity(trained_teacher)
    docs = fresh_docs(trained_teacher, RAW[:8])
    annotate(trained_teacher, docs)
    expected = teacher_logits(trained_teacher, docs)
    for doc, table in zip(docs, expected):
        cached = targets.get(doc)
        assert cached is not None and cached.dtype == numpy.float32 and cached.shape == table.shape
        assert numpy.allclose(cached, table, rtol=1e-3, atol=2e-3)
    # Logits are stored as float16 on disk, memory-mapped.
    assert (store / "logits.f16").stat().st_size == targets.meta["n_tokens"] * len(targets.tags) * 2
    unseen = Doc(trained_teacher.vocab, words=["never", "seen", "words"])
    assert targets.get(unseen) is None and unseen not in targets


def test_doc_key_sees_tokens_spaces_and_sentences(trained_teacher):
    vocab = trained_teacher.vocab
    a = Doc(vocab, words=["breast", "cancer", "."], spaces=[True, False, False])
    assert doc_key(a) == doc_key(Doc(vocab, words=["breast", "cancer", "."], spaces=[True, False, False]))
    assert doc_key(a) != doc_key(Doc(vocab, words=["breast", "cancer", "."], spaces=[True, True, False]))
    assert doc_key(a) != doc_key(Doc(vocab, words=["breast", "cancers", "."], spaces=[True, False, False]))
    split = Doc(vocab, words=["breast", "cancer", "."], spaces=[True, False, False], sent_starts=[True, True, False])
    assert doc_key(a) != doc_key(split)


def test_a_store_refuses_another_teacher(trained_teacher, store):
    targets = TeacherTargets(store)
    targets.check_teacher(trained_teacher)
    other = make_student(trained_teacher, n_layers=4, layer_map="first")  # same layers: a copy
    targets.check_teacher(other)
    output = other.get_pipe("fastbioner_ner").model.get_ref("output_layer")
    output.set_param("b", output.get_param("b") + 0.5)
    with pytest.raises(TeacherTargetsError, match="NER head weights") as err:
        targets.check_teacher(other)
    assert "transformer weights" not in str(err.value)
    with torch.no_grad():
        hf = other.get_pipe("transformer").model.transformer
        hf.embeddings.word_embeddings.weight[0, 0] += 1.0
    with pytest.raises(TeacherTargetsError, match="transformer weights"):
        targets.check_teacher(other)
    targets.check_teacher(trained_teacher)  # the copy was changed, not the teacher


def test_a_store_refuses_a_student_with_other_tags_or_wordpieces(trained_teacher, store, tmp_path):
    targets = TeacherTargets(store)
    targets.check_student(make_student(trained_teacher, n_layers=2))
    bert = make_tiny_bert(tmp_path / "bert", n_layers=1, words=["other", "vocabulary"])
    student = make_pipeline(bert)
    examples = make_examples(student, synthetic_sentences(8, seed=3, labels=("Disease",)))
    student.initialize(lambda: examples)
    with pytest.raises(TeacherTargetsError, match=r"tags \[.*\] vs the store's") as err:
        targets.check_student(student)
    assert "wordpiece vocabulary" in str(err.value)


def test_an_incomplete_store_is_refused(store, tmp_path):
    import shutil

    broken = tmp_path / "broken"
    shutil.copytree(store, broken)
    with (broken / "logits.f16").open("r+b") as f:
        f.truncate(10)
    with pytest.raises(TeacherTargetsError, match="logits.f16: expected .* bytes"):
        TeacherTargets(broken)
    with pytest.raises(TeacherTargetsError, match="meta.json: not found"):
        TeacherTargets(tmp_path / "nowhere")


def run_steps(teacher, examples, step, *, n_steps=3):
    """Distil a fresh student (the same for every call) for a few steps;
    return the soft loss of each step and the losses summed over the steps."""
    fix_random_seed(0)
    student = make_student(teacher, n_layers=2)
    optimizer = student.create_optimizer()
    optimizer.learn_rate = 1e-3
    soft, totals = [], {}
    for i in range(n_steps):
        losses = step(teacher, student, examples[i * 16 : (i + 1) * 16], sgd=optimizer, drop=0.0, progress=i / n_steps)
        soft.append(losses["fastbioner_ner_soft"])
        for key, value in losses.items():
            totals[key] = totals.get(key, 0.0) + value
    return soft, totals


def test_cached_soft_loss_equals_the_live_teachers(trained_teacher, store):
    examples = make_examples(trained_teacher, synthetic_sentences(40, seed=20)) + make_examples(
        trained_teacher, RAW[:8], gold=False
    )
    live, live_losses = run_steps(trained_teacher, examples, create_distill_step_v2())
    cached, cached_losses = run_steps(trained_teacher, examples, create_distill_step_v2(teacher_targets=store))
    assert live == pytest.approx(cached, rel=2e-3)
    assert live_losses["fastbioner_ner_hard"] == pytest.approx(cached_losses["fastbioner_ner_hard"], rel=2e-3)
    assert cached_losses["teacher_targets_hit"] == 48 and "teacher_targets_missing" not in cached_losses
    assert "teacher_targets_hit" not in live_losses


def test_docs_missing_from_the_store_fall_back_to_the_teacher(trained_teacher, store):
    new = make_examples(trained_teacher, synthetic_sentences(16, seed=99), gold=False)
    known = make_examples(trained_teacher, RAW[:16], gold=False)
    examples = known[:8] + new[:8] + known[8:] + new[8:]
    live, _ = run_steps(trained_teacher, examples, create_distill_step_v2(), n_steps=2)
    cached, losses = run_steps(trained_teacher, examples, create_distill_step_v2(teacher_targets=store), n_steps=2)
    assert live == pytest.approx(cached, rel=2e-3)
    assert losses["teacher_targets_missing"] == 16 and losses["teacher_targets_hit"] == 16


def test_the_hidden_state_loss_needs_the_live_teacher(store):
    with pytest.raises(ValueError, match="hidden-state loss .* needs the live teacher"):
        create_distill_step_v2(weights=create_dynamic_weights(hidden=1.0), teacher_targets=store)


@pytest.mark.parametrize("use_store", [False, True])
def test_the_step_leaves_nothing_of_the_teacher_on_the_examples(trained_teacher, store, use_store):
    examples = make_examples(trained_teacher, synthetic_sentences(16, seed=20))
    step = create_distill_step_v2(teacher_targets=store if use_store else None)
    run_steps(trained_teacher, examples, step, n_steps=1)
    assert all(eg.reference._.trf_data is None for eg in examples)
    assert all(eg.predicted._.trf_data is None for eg in examples)


# Docs of several sentences


@pytest.fixture(scope="module")
def sentence_teacher(trained_teacher):
    """The trained teacher with a sentence component and sentence windows."""
    teacher = make_student(trained_teacher, n_layers=4, layer_map="first")
    return with_sentence_windows(teacher, window=24, stride=16)


def multi_sentence_examples(nlp, n=8):
    texts = []
    for i in range(n):
        a, b = synthetic_sentences(2, seed=100 + i)
        texts.append(" ".join(a[0]) + ". " + " ".join(b[0]).capitalize() + ".")
    return [Example(nlp.make_doc(t), nlp.make_doc(t)) for t in texts], texts


def test_multi_sentence_docs_get_the_teachers_windows_on_both_sides(sentence_teacher):
    student = with_sentence_windows(make_student(sentence_teacher, n_layers=2), window=24, stride=16)
    examples, texts = multi_sentence_examples(student)
    create_distill_step_v2()(sentence_teacher, student, examples)
    for eg, text in zip(examples, texts):
        inference = [(s.start, s.end) for s in sentence_teacher(text).sents]
        assert len(inference) == 2
        assert [(s.start, s.end) for s in eg.reference.sents] == inference
        assert [(s.start, s.end) for s in eg.predicted.sents] == inference


def test_a_student_that_cuts_sentences_otherwise_is_refused(sentence_teacher):
    student = make_student(sentence_teacher, n_layers=2)
    student.remove_pipe("sentences")
    examples, _ = multi_sentence_examples(student, n=2)
    with pytest.raises(ValueError, match="1 sentence\\(s\\) on the student's side and 2 on the teacher's"):
        create_distill_step_v2()(sentence_teacher, student, examples)


def test_gold_sentences_reach_the_student_as_they_are(sentence_teacher):
    """A gold sentence that the rule would cut in two stays one window on
    both sides."""
    student = with_sentence_windows(make_student(sentence_teacher, n_layers=2), window=24, stride=16)
    words = ["cancer", "in", "mice", ".", "Aspirin", "was", "given"]
    reference = Doc(student.vocab, words=words, sent_starts=[True] + [False] * 6)
    eg = Example(Doc(student.vocab, words=words), reference)
    create_distill_step_v2()(sentence_teacher, student, [eg])
    assert len(list(eg.predicted.sents)) == 1 and len(list(eg.reference.sents)) == 1


def test_a_store_refuses_a_teacher_with_other_windows(trained_teacher, store, tmp_path):
    """Issue 27 item 11: the logits depend on the windows the teacher reads a
    doc in, so the store records its span getter (window, stride) and its
    wordpiece limit, and refuses a teacher that differs in either, or a store
    that recorded none."""
    import shutil

    import srsly

    from spacy_fastbioner.encoder.transformer import find_transformer, hf_tokenizer

    targets = TeacherTargets(store)
    windows = targets.teacher["windows"]
    strided = {"@span_getters": "spacy-transformers.strided_spans.v1", "stride": 32, "window": 48}
    assert windows["span_getter"] == strided
    assert windows["max_length"] == 128  # the tiny tokenizer sets none: the positions (check_positions)
    narrow = make_student(trained_teacher, n_layers=4, layer_map="first")  # the same weights
    targets.check_teacher(narrow)
    narrow.get_pipe_config("transformer")["model"]["get_spans"]["window"] = 24
    with pytest.raises(TeacherTargetsError, match=r"meta.json: .*transformer windows .*'window': 24.* vs the store's"):
        targets.check_teacher(narrow)
    truncating = make_student(trained_teacher, n_layers=4, layer_map="first")
    hf_tokenizer(find_transformer(truncating)).model_max_length = 64
    with pytest.raises(TeacherTargetsError, match=r"'max_length': 64\} vs the store's .*'max_length': 128"):
        targets.check_teacher(truncating)
    old = tmp_path / "old"
    shutil.copytree(store, old)
    meta = srsly.read_json(old / "meta.json")
    del meta["teacher"]["windows"]
    srsly.write_json(old / "meta.json", meta)
    with pytest.raises(TeacherTargetsError, match="vs the store's none recorded"):
        TeacherTargets(old).check_teacher(trained_teacher)
