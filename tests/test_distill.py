"""Dynamic knowledge distillation: weights, losses, the step, the student."""

import math

import numpy
import pytest
import spacy
import torch
from helpers import (
    make_examples,
    make_pipeline,
    make_tiny_bert,
    synthetic_sentences,
)
from spacy.tokens import Doc
from spacy.training import Example
from thinc.api import Model

from spacy_fastbioner.distill.hidden import LayerCapture, hidden_state_loss
from spacy_fastbioner.distill.step import create_distill_step
from spacy_fastbioner.distill.weights import SHAPES, create_dynamic_weights
from spacy_fastbioner.encoder.student import make_student, select_layers
from spacy_fastbioner.encoder.transformer import find_transformer
from spacy_fastbioner.pipeline.decoding import log_softmax


def transformer_state(nlp):
    return {k: v.detach().clone() for k, v in find_transformer(nlp).model.transformer.state_dict().items()}


def head_state(nlp):
    """The NER head's thinc parameters, by node and name."""
    model = nlp.get_pipe("fastbioner_ner").model
    return {
        (node.id, name): numpy.array(node.get_param(name))
        for node in model.walk()
        for name in node.param_names
        if node.has_param(name)
    }


def tag_agreement(teacher, student, texts):
    pairs = zip(teacher.pipe(texts), student.pipe(texts))
    same = [
        (a.ent_iob_, a.ent_type_) == (b.ent_iob_, b.ent_type_) for t_doc, s_doc in pairs for a, b in zip(t_doc, s_doc)
    ]
    return sum(same) / len(same)


# Weights


@pytest.mark.parametrize("shape", SHAPES)
def test_weights_at_start_and_end(shape):
    weights = create_dynamic_weights(shape=shape, soft_start=0.9, soft_end=0.1, hidden=0.5)
    start, end = weights(0.0), weights(1.0)
    assert set(start) == {"soft", "hard", "hidden"}
    assert start["soft"] == pytest.approx(0.9)
    assert start["hard"] == pytest.approx(0.1)
    assert start["hidden"] == pytest.approx(0.5)
    if shape == "constant":
        assert end == pytest.approx(start)
    else:
        assert end["soft"] == pytest.approx(0.1)
        assert end["hard"] == pytest.approx(0.9)
        assert end["hidden"] == pytest.approx(0.5 * 0.1 / 0.9)
        assert end["hard"] >= end["soft"]
    assert start["soft"] > start["hard"]


def test_default_weights_follow_the_paper():
    weights = create_dynamic_weights()
    assert weights(0.0)["soft"] > weights(0.0)["hard"]
    assert weights(1.0)["hard"] >= weights(1.0)["soft"]
    values = [weights(p / 10)["soft"] for p in range(11)]
    assert values == sorted(values, reverse=True)


def test_weight_shapes_differ_in_the_middle():
    middle = {s: create_dynamic_weights(shape=s, soft_start=1.0, soft_end=0.1)(0.25)["soft"] for s in SHAPES}
    assert middle["linear"] == pytest.approx(1.0 - 0.9 * 0.25)
    assert middle["cosine"] == pytest.approx(0.1 + 0.9 * (1 + math.cos(math.pi * 0.25)) / 2)
    assert middle["exponential"] == pytest.approx(0.1**0.25)
    assert middle["constant"] == 1.0


def test_weights_validate_arguments():
    with pytest.raises(ValueError, match="unknown weight shape"):
        create_dynamic_weights(shape="sigmoid")
    with pytest.raises(ValueError, match="soft_start"):
        create_dynamic_weights(soft_start=1.5)
    with pytest.raises(ValueError, match="exponential"):
        create_dynamic_weights(shape="exponential", soft_end=0.0)


def test_weights_are_registered():
    weights = spacy.registry.misc.get("spacy_fastbioner.dynamic_weights.v1")(shape="cosine")
    assert weights(0.0)["soft"] == pytest.approx(1.0)
    assert spacy.registry.misc.get("spacy_fastbioner.distill_step.v1") is create_distill_step


# Losses


@pytest.mark.parametrize("T", [1.0, 2.0])
def test_soft_loss_is_t2_kl_with_the_right_gradient(trained_teacher, T):
    """Against torch as an independent reference: T² · KL(teacher_T ‖ student_T)
    averaged over tokens, and its gradient by autograd."""
    ner = trained_teacher.get_pipe("fastbioner_ner")
    rng = numpy.random.default_rng(0)
    teacher = [rng.normal(size=(4, 5)).astype("f"), rng.normal(size=(2, 5)).astype("f")]
    student = [rng.normal(size=(4, 5)).astype("f"), rng.normal(size=(2, 5)).astype("f")]
    loss, grads = ner.get_teacher_student_loss(teacher, student, temperature=T)
    logits = [torch.tensor(s, dtype=torch.float64, requires_grad=True) for s in student]
    kl = sum(
        torch.nn.functional.kl_div(
            torch.log_softmax(s / T, dim=-1),
            torch.log_softmax(torch.tensor(t, dtype=torch.float64) / T, dim=-1),
            reduction="sum",
            log_target=True,
        )
        for s, t in zip(logits, teacher)
    )
    expected = T**2 * kl / 6
    expected.backward()
    assert loss == pytest.approx(float(expected.detach()), rel=1e-4)
    for grad, logit in zip(grads, logits):
        numpy.testing.assert_allclose(grad, logit.grad.numpy(), rtol=1e-4, atol=1e-6)
    # Identical distributions: zero loss and gradient.
    zero, zero_grads = ner.get_teacher_student_loss(teacher, teacher, temperature=T)
    assert zero == pytest.approx(0.0, abs=1e-5)
    assert all(numpy.abs(g).max() < 1e-6 for g in zero_grads)


def test_hard_loss_is_cross_entropy_on_gold_tokens(trained_teacher):
    ner = trained_teacher.get_pipe("fastbioner_ner")
    eg = make_examples(trained_teacher, [(["breast", "cancer", "in", "mice"], ["B-Disease", "I-Disease", "O", "O"])])[0]
    scores = [numpy.random.default_rng(1).normal(size=(4, 5)).astype("f")]
    loss, grads = ner.get_loss([eg], scores)
    gold = [ner.tags.index(t) for t in ["B-Disease", "I-Disease", "O", "O"]]
    log_q = log_softmax(scores[0])
    assert loss == pytest.approx(-numpy.mean([log_q[i, g] for i, g in enumerate(gold)]), rel=1e-5)
    assert grads[0].sum(axis=1) == pytest.approx(numpy.zeros(4), abs=1e-6)


def test_hidden_state_loss_is_masked_mse():
    student, teacher = LayerCapture(), LayerCapture()
    mask = torch.tensor([[1, 1, 0]])
    student.attention_mask.append(mask)
    teacher.attention_mask.append(mask)
    student.layers[0] = torch.zeros(1, 3, 2, requires_grad=True)
    teacher.layers[3] = torch.tensor([[[1.0, 1.0], [3.0, 3.0], [100.0, 100.0]]])
    loss = hidden_state_loss(student, teacher, [3])
    assert float(loss.detach()) == pytest.approx((1 + 1 + 9 + 9) / 4)
    loss.backward()
    assert float(student.layers[0].grad[0, 2].abs().sum()) == 0.0
    teacher.layers[3] = torch.zeros(1, 4, 2)
    with pytest.raises(ValueError, match="same wordpiece batches"):
        hidden_state_loss(student, teacher, [3])


# The student


@pytest.mark.parametrize(
    "n_teacher,n,layer_map,expected",
    [
        (6, 3, "skip", [1, 3, 5]),
        (12, 6, "skip", [1, 3, 5, 7, 9, 11]),
        (4, 2, "first", [0, 1]),
        (4, 2, "last", [2, 3]),
        (6, 3, [0, 2, 4], [0, 2, 4]),
    ],
)
def test_select_layers(n_teacher, n, layer_map, expected):
    assert select_layers(n_teacher, n, layer_map) == expected


@pytest.mark.parametrize("layer_map,match", [("middle", "unknown layer map"), ([3, 1], "increasing"), ([9], "between")])
def test_select_layers_rejects_bad_maps(layer_map, match):
    with pytest.raises(ValueError, match=match):
        select_layers(4, 2, layer_map)


def test_make_student_copies_the_mapped_layers(trained_teacher, tmp_path):
    student = make_student(trained_teacher, layer_map=[0, 3])
    t_hf = find_transformer(trained_teacher).model.transformer
    s_hf = find_transformer(student).model.transformer
    assert s_hf.config.num_hidden_layers == 2 and t_hf.config.num_hidden_layers == 4
    for i, j in enumerate([0, 3]):
        for (_, a), (_, b) in zip(
            s_hf.encoder.layer[i].state_dict().items(), t_hf.encoder.layer[j].state_dict().items()
        ):
            assert torch.equal(a, b)
    assert torch.equal(s_hf.embeddings.word_embeddings.weight, t_hf.embeddings.word_embeddings.weight)
    info = student.meta["fastbioner"]
    assert info["layer_map"] == [0, 3]
    assert info["student_parameters"]["total"] < info["teacher_parameters"]["total"]
    student.to_disk(tmp_path / "student")
    loaded = spacy.load(tmp_path / "student")
    assert find_transformer(loaded).model.transformer.config.num_hidden_layers == 2
    assert loaded.meta["fastbioner"]["layer_map"] == [0, 3]
    texts = ["breast cancer in mice treated with aspirin"]
    assert [e.text for e in loaded(texts[0]).ents] == [e.text for e in student(texts[0]).ents]


# The step


def distil(teacher, student, examples, *, epochs, step, lr=1e-3):
    optimizer = student.create_optimizer()
    optimizer.learn_rate = lr
    n = epochs * math.ceil(len(examples) / 16)
    k = 0
    for _ in range(epochs):
        for i in range(0, len(examples), 16):
            losses = step(teacher, student, examples[i : i + 16], sgd=optimizer, drop=0.1, progress=k / n)
            k += 1
    return losses


def scrambled_student(teacher):
    """A student whose NER head starts from noise, so agreement must be learnt."""
    student = make_student(teacher, n_layers=2)
    output = student.get_pipe("fastbioner_ner").model.get_ref("output_layer")
    rng = numpy.random.default_rng(0)
    output.set_param("W", rng.normal(size=output.get_param("W").shape).astype("f"))
    return student


def test_distillation_from_unlabelled_text(trained_teacher):
    texts = [" ".join(words) for words, _ in synthetic_sentences(60, seed=11)]
    student = scrambled_student(trained_teacher)
    before = tag_agreement(trained_teacher, student, texts)
    teacher_state = transformer_state(trained_teacher)
    teacher_head = head_state(trained_teacher)
    assert teacher_head
    student_state = transformer_state(student)
    raw = make_examples(student, synthetic_sentences(200, seed=5), gold=False)
    step = create_distill_step(temperature=2.0)
    losses = distil(trained_teacher, student, raw, epochs=4, step=step)
    assert losses["fastbioner_ner_soft"] > 0 and losses["fastbioner_ner_hard"] == 0
    after = tag_agreement(trained_teacher, student, texts)
    assert after >= 0.9 and after > before
    # The teacher is bit-identical (transformer and NER head), the student has changed.
    assert all(torch.equal(v, transformer_state(trained_teacher)[k]) for k, v in teacher_state.items())
    assert all(numpy.array_equal(v, head_state(trained_teacher)[k]) for k, v in teacher_head.items())
    assert any(not torch.equal(v, transformer_state(student)[k]) for k, v in student_state.items())


def test_distillation_on_gold_logs_each_part(trained_teacher):
    student = scrambled_student(trained_teacher)
    gold = make_examples(student, synthetic_sentences(64, seed=6))
    weights = create_dynamic_weights(hidden=1.0)
    losses = distil(trained_teacher, student, gold, epochs=1, step=create_distill_step(weights=weights))
    for key in ("fastbioner_ner", "fastbioner_ner_soft", "fastbioner_ner_hard", "hidden", "transformer"):
        assert losses[key] > 0, key


class TeacherScores:
    """A teacher component that returns fixed logits, and counts its calls."""

    def __init__(self, tags, scores):
        self.tags, self.scores, self.calls = tags, scores, 0

    def predict(self, docs):
        self.calls += 1
        return [s.copy() for s in self.scores]


@pytest.mark.parametrize("soft,hard", [(0.0, 1.0), (1.0, 0.0), (0.3, 0.7)])
def test_loss_weights_act_on_the_gradient(trained_teacher, monkeypatch, soft, hard):
    """The gradient that reaches the student's model is soft · the soft
    gradient + hard · the gold gradient: a zero soft weight leaves the teacher
    out (it is not even run), a zero hard weight leaves the gold tags out."""
    ner = make_student(trained_teacher, n_layers=2).get_pipe("fastbioner_ner")
    sentences = synthetic_sentences(3, seed=9)
    examples = [
        Example(Doc(ner.vocab, words=words), Doc(ner.vocab, words=words, ents=tags)) for words, tags in sentences
    ]
    rng = numpy.random.default_rng(3)
    student = [rng.normal(size=(len(words), len(ner.tags))).astype("f") for words, _ in sentences]
    teacher = TeacherScores(ner.tags, [rng.normal(size=s.shape).astype("f") for s in student])
    received = []
    real_begin_update = Model.begin_update

    def begin_update(model, X):
        if model is not ner.model:
            return real_begin_update(model, X)
        return [s.copy() for s in student], received.append

    monkeypatch.setattr(Model, "begin_update", begin_update)
    losses = ner.distill(teacher, examples, temperature=2.0, soft_weight=soft, hard_weight=hard)
    _, d_soft = ner.get_teacher_student_loss(teacher.scores, student, temperature=2.0)
    _, d_hard = ner.get_loss(examples, student)
    assert len(received) == 1
    for got, ds, dh in zip(received[0], d_soft, d_hard):
        numpy.testing.assert_allclose(got, soft * ds + hard * dh, rtol=1e-5, atol=1e-7)
    assert teacher.calls == (1 if soft else 0)
    assert (losses["fastbioner_ner_soft"] > 0) == bool(soft)
    assert (losses["fastbioner_ner_hard"] > 0) == bool(hard)


def test_tokenizer_mismatch_is_a_clear_error(trained_teacher, tmp_path):
    other_bert = make_tiny_bert(tmp_path / "other", n_layers=2, words=["extra", "pieces", "here"])
    other = make_pipeline(other_bert)
    examples = make_examples(other, synthetic_sentences(4, seed=7))
    other.initialize(lambda: examples)
    with pytest.raises(ValueError, match="wordpiece tokenizers differ"):
        create_distill_step()(trained_teacher, other, examples)


def test_examples_need_the_same_tokens_on_both_sides(trained_teacher):
    student = make_student(trained_teacher, n_layers=2)
    eg = make_examples(student, [(["breast", "cancer"], ["B-Disease", "I-Disease"])])[0]
    bad = Example(eg.predicted, Doc(student.vocab, words=["breast", "cancer", "cells"]))
    with pytest.raises(ValueError, match="same tokens"):
        create_distill_step()(trained_teacher, student, [bad])


def test_gold_only_weights_skip_the_teacher(trained_teacher):
    """The no-KD ablation: soft weight 0 trains on gold tags alone and never
    runs the teacher."""
    student = make_student(trained_teacher, n_layers=2)
    gold = make_examples(student, synthetic_sentences(16, seed=8))
    weights = create_dynamic_weights(shape="constant", soft_start=0.0)
    losses = distil(trained_teacher, student, gold, epochs=1, step=create_distill_step(weights=weights))
    assert losses["fastbioner_ner_soft"] == 0.0 and losses["fastbioner_ner_hard"] > 0.0
    assert all(eg.reference._.trf_data is None for eg in gold)
