"""Dynamic knowledge distillation: weights, losses, the step, the student."""
import math

import numpy
import pytest
import spacy
import torch

from spacy_fastbioner.distill.hidden import LayerCapture, hidden_state_loss
from spacy_fastbioner.distill.step import create_distill_step
from spacy_fastbioner.distill.weights import SHAPES, create_dynamic_weights
from spacy_fastbioner.pipeline.decoding import log_softmax
from spacy_fastbioner.student import find_transformer, make_student, select_layers
from spacy_fastbioner.testing import (
    make_examples,
    make_pipeline,
    make_tiny_bert,
    synthetic_sentences,
)


def transformer_state(nlp):
    return {k: v.detach().clone() for k, v in find_transformer(nlp).model.transformer.state_dict().items()}


def tag_agreement(teacher, student, texts):
    pairs = zip(teacher.pipe(texts), student.pipe(texts))
    same = [
        (a.ent_iob_, a.ent_type_) == (b.ent_iob_, b.ent_type_)
        for t_doc, s_doc in pairs
        for a, b in zip(t_doc, s_doc)
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


def test_soft_loss_is_t2_kl_with_the_right_gradient(trained_teacher):
    ner = trained_teacher.get_pipe("fastbioner_ner")
    rng = numpy.random.default_rng(0)
    teacher = [rng.normal(size=(4, 5)).astype("f"), rng.normal(size=(2, 5)).astype("f")]
    student = [rng.normal(size=(4, 5)).astype("f"), rng.normal(size=(2, 5)).astype("f")]
    T = 2.0
    loss, grads = ner.get_teacher_student_loss(teacher, student, temperature=T)
    p = [numpy.exp(log_softmax(t, T)) for t in teacher]
    log_q = [log_softmax(s, T) for s in student]
    kl = sum(float((pi * (numpy.log(pi) - lq)).sum()) for pi, lq in zip(p, log_q)) / 6
    assert loss == pytest.approx(T**2 * kl, rel=1e-4)
    # Finite differences on one logit.
    eps = 1e-3
    bumped = [s.copy() for s in student]
    bumped[0][1, 2] += eps
    loss2, _ = ner.get_teacher_student_loss(teacher, bumped, temperature=T)
    assert (loss2 - loss) / eps == pytest.approx(float(grads[0][1, 2]), rel=2e-2, abs=1e-4)
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
        for (_, a), (_, b) in zip(s_hf.encoder.layer[i].state_dict().items(), t_hf.encoder.layer[j].state_dict().items()):
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
    student_state = transformer_state(student)
    raw = make_examples(student, synthetic_sentences(200, seed=5), gold=False)
    step = create_distill_step(temperature=2.0)
    losses = distil(trained_teacher, student, raw, epochs=4, step=step)
    assert losses["fastbioner_ner_soft"] > 0 and losses["fastbioner_ner_hard"] == 0
    after = tag_agreement(trained_teacher, student, texts)
    assert after >= 0.9 and after > before
    # The teacher is bit-identical, the student has changed.
    assert all(torch.equal(v, transformer_state(trained_teacher)[k]) for k, v in teacher_state.items())
    assert any(not torch.equal(v, transformer_state(student)[k]) for k, v in student_state.items())


def test_distillation_on_gold_logs_each_part(trained_teacher):
    student = scrambled_student(trained_teacher)
    gold = make_examples(student, synthetic_sentences(64, seed=6))
    weights = create_dynamic_weights(hidden=1.0)
    losses = distil(trained_teacher, student, gold, epochs=1, step=create_distill_step(weights=weights))
    for key in ("fastbioner_ner", "fastbioner_ner_soft", "fastbioner_ner_hard", "hidden", "transformer"):
        assert losses[key] > 0, key


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
    from spacy.tokens import Doc
    from spacy.training import Example

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
