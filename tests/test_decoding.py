"""Constrained BIO decoding yields the best valid tag sequence, never an
invalid one."""

import itertools

import numpy
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from spacy_fastbioner.pipeline.decoding import (
    biluo_to_bio,
    bio_tags,
    bio_to_spans,
    log_softmax,
    transition_constraints,
    viterbi,
)

TAGS = bio_tags(["Chemical", "Disease"])


def is_valid(tags):
    prev = "O"
    for tag in tags:
        if tag.startswith("I-") and (prev == "O" or prev[2:] != tag[2:]):
            return False
        prev = tag
    return True


def decode(table):
    start, trans = transition_constraints(TAGS)
    return [TAGS[i] for i in viterbi(log_softmax(table), start, trans)]


def path_score(table, tags):
    log_p = log_softmax(table)
    return float(sum(log_p[t, TAGS.index(tag)] for t, tag in enumerate(tags)))


def best_valid_score(table):
    """Brute force over every tag sequence that `is_valid` accepts."""
    paths = itertools.product(TAGS, repeat=table.shape[0])
    return max(path_score(table, path) for path in paths if is_valid(path))


def assert_best_valid(table):
    tags = decode(table)
    assert is_valid(tags)
    assert path_score(table, tags) == pytest.approx(best_valid_score(table), abs=1e-5)


def test_bio_tags():
    assert TAGS == ["O", "B-Chemical", "I-Chemical", "B-Disease", "I-Disease"]


@pytest.mark.parametrize(
    "tag,expected",
    [("U-X", "B-X"), ("L-X", "I-X"), ("B-X", "B-X"), ("I-X", "I-X"), ("O", "O"), ("-", None), (None, None)],
)
def test_biluo_to_bio(tag, expected):
    assert biluo_to_bio(tag) == expected


def test_viterbi_fixes_an_invalid_argmax():
    # Argmax alone would give O, I-Disease: invalid.
    table = numpy.log(numpy.array([[0.9, 0.0, 0.0, 0.05, 0.05], [0.3, 0.0, 0.0, 0.0, 0.7]]) + 1e-9)
    assert_best_valid(table)
    # 0.9 * 0.3 beats 0.05 * 0.7: the best valid path keeps O, O.
    assert decode(table) == ["O", "O"]


def test_viterbi_prefers_the_best_valid_path():
    probs = numpy.array([[0.1, 0.0, 0.0, 0.6, 0.3], [0.1, 0.0, 0.0, 0.1, 0.8], [0.8, 0.0, 0.2, 0.0, 0.0]])
    assert decode(numpy.log(probs + 1e-9)) == ["B-Disease", "I-Disease", "O"]


def test_type_change_inside_entity_is_invalid():
    probs = numpy.array([[0.0, 0.0, 0.0, 1.0, 0.0], [0.0, 0.0, 1.0, 0.0, 0.0]])
    assert_best_valid(numpy.log(probs + 1e-9))


@pytest.mark.parametrize("n_tokens", [1, 2, 3, 4])
def test_viterbi_finds_the_best_valid_path_on_random_tables(n_tokens):
    rng = numpy.random.default_rng(n_tokens)
    for _ in range(20):
        assert_best_valid(rng.normal(scale=3.0, size=(n_tokens, len(TAGS))).astype("f"))


@settings(max_examples=200, deadline=None)
@given(
    arrays(
        numpy.float32,
        st.tuples(st.integers(0, 30), st.just(len(TAGS))),
        elements=st.one_of(
            st.floats(-1e6, 1e6, width=32),
            st.sampled_from([numpy.nan, numpy.inf, -numpy.inf, 0.0]),
        ),
    )
)
def test_adversarial_tables_decode_to_valid_sequences(table):
    with numpy.errstate(all="ignore"):
        tags = decode(table)
    assert len(tags) == table.shape[0]
    assert is_valid(tags)
    for start, end, label in bio_to_spans(tags):
        assert 0 <= start < end <= len(tags) and label in ("Chemical", "Disease")


def test_bio_to_spans():
    tags = ["B-X", "I-X", "O", "B-Y", "B-Y", "I-Y", "I-X"]
    assert bio_to_spans(tags) == [(0, 2, "X"), (3, 4, "Y"), (4, 6, "Y"), (6, 7, "X")]


@pytest.mark.parametrize("costs", [False, True])
@pytest.mark.parametrize("seed", range(5))
def test_viterbi_flat_equals_viterbi_per_doc(seed, costs):
    """The batched decoding of set_annotations gives each doc what viterbi
    gives it alone: empty docs, non-finite scores, greedy tags that break a
    constraint (I-X after O) and docs whose greedy tags are valid; also with
    allowed transitions that cost something (every doc runs the programme)."""
    from spacy_fastbioner.pipeline.decoding import viterbi_flat

    rng = numpy.random.default_rng(seed)
    start, trans = transition_constraints(TAGS)
    if costs:
        trans = numpy.where(numpy.isfinite(trans), rng.normal(size=trans.shape), trans).astype("f")
    tables = []
    for _ in range(12):
        n = int(rng.integers(0, 9))
        table = rng.normal(size=(n, len(TAGS))).astype("f") * 3
        if n and rng.random() < 0.3:
            table[int(rng.integers(0, n)), int(rng.integers(0, len(TAGS)))] = rng.choice(
                [numpy.nan, numpy.inf, -numpy.inf]
            )
        tables.append(table)
    with numpy.errstate(invalid="ignore"):  # inf - inf in the log softmax of a table with inf
        expected = [viterbi(log_softmax(t), start, trans) if len(t) else [] for t in tables]
        tags, lengths = viterbi_flat(tables, start, trans)
    assert lengths.tolist() == [len(t) for t in tables]
    ends = numpy.cumsum(lengths).tolist()
    assert [tags[end - n : end].tolist() for end, n in zip(ends, lengths.tolist())] == expected
    tags, lengths = viterbi_flat([], start, trans)
    assert tags.size == 0 and lengths.size == 0


@pytest.mark.parametrize("seed", range(3))
def test_entity_columns_read_tags_as_bio_to_spans(seed):
    """The entity attributes that set_annotations writes give each doc the
    spans that `bio_to_spans` reads from its tags, invalid sequences too
    (an I-X after O or after Y begins an entity), with docs of no tokens."""
    from spacy.tokens import Doc
    from spacy.vocab import Vocab

    from spacy_fastbioner.pipeline.decoding import entity_columns

    vocab = Vocab()
    hashes = [0 if tag == "O" else vocab.strings.add(tag[2:]) for tag in TAGS]
    rng = numpy.random.default_rng(seed)
    lengths = rng.integers(0, 7, size=40)
    tag_ids = rng.integers(0, len(TAGS), size=int(lengths.sum()))
    columns = entity_columns(tag_ids, lengths, TAGS, hashes)
    assert columns.shape == (len(tag_ids), 2)
    end = 0
    for n in lengths.tolist():
        end += n
        if not n:
            continue
        doc = Doc(vocab, words=["w"] * n)
        doc.from_array(["ENT_IOB", "ENT_TYPE"], columns[end - n : end])
        expected = bio_to_spans([TAGS[i] for i in tag_ids[end - n : end]])
        assert [(e.start, e.end, e.label_) for e in doc.ents] == expected


def test_length_groups_bound_the_padding():
    """Issue 27 item 12: one 100k-token doc among 1,000 short ones is decoded
    apart: every group's padded cells (docs x steps) are at most twice its
    tokens, and the steps of all groups at most twice the longest doc."""
    from spacy_fastbioner.pipeline.decoding import length_groups

    rng = numpy.random.default_rng(0)
    lengths = numpy.concatenate([[100_000], rng.integers(1, 60, size=1000)])
    rng.shuffle(lengths)
    groups = length_groups(lengths.tolist())
    assert sorted(numpy.concatenate(groups).tolist()) == list(range(len(lengths)))
    for group in groups:
        assert len(group) * lengths[group].max() <= 2 * lengths[group].sum()
    assert sum(int(lengths[group].max()) for group in groups) <= 2 * 100_000
    # Before: a single group of 1,001 docs x 100,000 steps.
    assert sum(len(group) * int(lengths[group].max()) for group in groups) < 3 * lengths.sum()
    assert length_groups([]) == [] and [g.tolist() for g in length_groups([0, 3, 0])] == [[1], [0, 2]]


def test_a_long_doc_among_short_ones_decodes_as_alone_within_bounded_memory():
    """The batched programme gives each doc what it gives the doc alone, and
    the memory it allocates (traced, so deterministic) stays a small multiple
    of the scores: padding the 300 short docs to the long one's 3,000 steps
    took over 600 times the scores."""
    import tracemalloc

    from spacy_fastbioner.pipeline.decoding import viterbi_flat

    rng = numpy.random.default_rng(1)
    start, trans = transition_constraints(TAGS)
    tables = [rng.normal(size=(int(n), len(TAGS))).astype("f") * 3 for n in rng.integers(1, 8, size=300)]
    tables.insert(120, rng.normal(size=(3000, len(TAGS))).astype("f") * 3)
    tracemalloc.start()
    try:
        tags, lengths = viterbi_flat(tables, start, trans)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 16 * sum(t.nbytes for t in tables)
    ends = numpy.cumsum(lengths).tolist()
    found = [tags[end - n : end].tolist() for end, n in zip(ends, lengths.tolist())]
    assert found == [viterbi(log_softmax(t), start, trans) for t in tables]
