"""BIO tag sets and decoding under tag transition constraints."""

from typing import Iterable, List, Optional, Sequence, Tuple, cast

import numpy
from thinc.types import Floats1d, Floats2d

OUTSIDE = "O"
# Transitions are scored in log space: an allowed one costs 0, a forbidden one
# is impossible. Emissions are kept finite (floored at MIN_LOG_PROB), and the
# all-O path is always allowed, so the best path is always a valid one.
FORBIDDEN = -numpy.inf
MIN_LOG_PROB = -1e4


def bio_tags(labels: Iterable[str]) -> List[str]:
    """The BIO (IOB2) tag set of the given entity labels: O, then B-X and I-X
    for each label, in order.
    """
    tags = [OUTSIDE]
    for label in labels:
        tags.extend((f"B-{label}", f"I-{label}"))
    return tags


def biluo_to_bio(tag: Optional[str]) -> Optional[str]:
    """Map a BILUO tag (as `Example.get_aligned_ner` returns) to BIO. Missing
    values (None, "-", "") map to None.
    """
    if not tag or tag == "-":
        return None
    prefix, _, label = tag.partition("-")
    if prefix == "U":
        return f"B-{label}"
    if prefix == "L":
        return f"I-{label}"
    return tag


def transition_constraints(tags: Sequence[str]) -> Tuple[Floats1d, Floats2d]:
    """The start and transition scores that forbid invalid BIO sequences:
    no I-X at the start, none after O, none after B-Y or I-Y with Y != X.

    RETURNS (Tuple[Floats1d, Floats2d]): A (n_tags,) start vector and an
        (n_tags, n_tags) matrix indexed [previous, current].
    """
    n = len(tags)
    start = numpy.zeros((n,), dtype="f")
    trans = numpy.zeros((n, n), dtype="f")
    for j, tag in enumerate(tags):
        if not tag.startswith("I-"):
            continue
        label = tag[2:]
        start[j] = FORBIDDEN
        for i, prev in enumerate(tags):
            if prev == OUTSIDE or prev[2:] != label:
                trans[i, j] = FORBIDDEN
    return cast(Floats1d, start), cast(Floats2d, trans)


def log_softmax(scores: Floats2d, temperature: float = 1.0) -> Floats2d:
    """Row-wise log softmax of a 2d score table, computed stably."""
    return cast(Floats2d, _log_softmax(scores, temperature))


def softmax(scores: Floats2d, temperature: float = 1.0) -> Floats2d:
    """Row-wise softmax of a 2d score table: the exp of `log_softmax`."""
    return cast(Floats2d, numpy.exp(_log_softmax(scores, temperature)))


def _log_softmax(scores: Floats2d, temperature: float) -> numpy.ndarray:
    z = numpy.asarray(scores, dtype="f") / temperature
    z = z - z.max(axis=-1, keepdims=True)
    return z - numpy.log(numpy.exp(z).sum(axis=-1, keepdims=True))


def viterbi(log_probs: Floats2d, start: Floats1d, trans: Floats2d) -> List[int]:
    """The highest-scoring tag sequence under the transition constraints.

    log_probs (Floats2d): (n_tokens, n_tags) log probabilities. Non-finite
        values (NaN, inf) are treated as very unlikely, so decoding never fails.
    start (Floats1d): (n_tags,) start scores, from `transition_constraints`.
    trans (Floats2d): (n_tags, n_tags) transition scores, from
        `transition_constraints`.
    RETURNS (List[int]): One tag index per token; every transition is allowed.
    """
    n_tokens = log_probs.shape[0]
    if n_tokens == 0:
        return []
    emissions = numpy.nan_to_num(
        numpy.asarray(log_probs, dtype="f"),
        nan=MIN_LOG_PROB,
        posinf=0.0,
        neginf=MIN_LOG_PROB,
    )
    emissions = numpy.clip(emissions, MIN_LOG_PROB, 0.0)
    # Fast path: when every allowed transition costs 0 and the per-token best
    # tags form a valid sequence, no constraint binds and they are the best path.
    greedy = emissions.argmax(axis=1)
    start_scores, trans_scores = numpy.asarray(start), numpy.asarray(trans)
    if (
        numpy.isfinite(start_scores[greedy[0]])
        and numpy.isfinite(trans_scores[greedy[:-1], greedy[1:]]).all()
        and not start_scores[numpy.isfinite(start_scores)].any()
        and not trans_scores[numpy.isfinite(trans_scores)].any()
    ):
        return [int(i) for i in greedy]
    return _viterbi_many([emissions], start_scores, trans_scores)[0].tolist()


def length_groups(lengths: Sequence[int]) -> List[numpy.ndarray]:
    """The docs that `_viterbi_many` decodes together, each group padded to
    its longest doc: the docs sorted by length, longest first, a group
    taking every doc at least half as long as its first. Padding thus never
    doubles a group's cells (docs x steps), so one very long doc among many
    short ones is decoded apart instead of padding them all to its length;
    and each group's longest doc is at most half the previous group's, so
    the steps of all groups add up to at most twice the longest doc.

    lengths (Sequence[int]): Each doc's number of tokens.
    RETURNS (List[numpy.ndarray]): The groups, as indices into `lengths`;
        every doc is in exactly one.
    """
    sizes = numpy.asarray(lengths, dtype="int64")
    order = numpy.argsort(-sizes, kind="stable")
    groups: List[numpy.ndarray] = []
    first = 0
    while first < len(order):
        longest = int(sizes[order[first]])
        # The docs from `first` on are sorted longest first: the group ends
        # at the first doc shorter than half the group's longest.
        end = first + int(numpy.searchsorted(-2 * sizes[order[first:]], -longest, side="right"))
        groups.append(order[first:end])
        first = end
    return groups


def _viterbi_many(
    emissions: Sequence[numpy.ndarray], start: numpy.ndarray, trans: numpy.ndarray
) -> List[numpy.ndarray]:
    """The dynamic programme of `viterbi` for several docs at once, the docs
    of similar lengths (`length_groups`) decoded together, so that memory
    stays within a constant factor of the docs' own size."""
    found: List[numpy.ndarray] = [numpy.zeros((0,), dtype="int64")] * len(emissions)
    for group in length_groups([len(e) for e in emissions]):
        for i, best in zip(group.tolist(), _viterbi_padded([emissions[i] for i in group], start, trans)):
            found[i] = best
    return found


def _viterbi_padded(
    emissions: Sequence[numpy.ndarray], start: numpy.ndarray, trans: numpy.ndarray
) -> List[numpy.ndarray]:
    """The dynamic programme for a group of docs, one step over all of them
    per token position. The docs are aligned at their ends and preceded by
    an extra tag that only the padding takes and that leads into a doc's
    first token with the start scores, so that every doc runs every step
    with no per-doc masks. Memory: (docs x steps x tags) float32 scores and
    backpointers of the smallest integer type that holds a tag."""
    lengths = numpy.asarray([len(e) for e in emissions], dtype="int64")
    n_docs, n_steps, n_tags = len(emissions), int(lengths.max()), int(start.shape[0])
    if not n_steps:
        return [numpy.zeros((0,), dtype="int64") for _ in emissions]
    pad = n_tags
    padded = numpy.full((n_docs, n_steps, n_tags + 1), -numpy.inf, dtype="f")
    for i, table in enumerate(emissions):
        padded[i, n_steps - len(table) :, :n_tags] = table
        padded[i, : n_steps - len(table), pad] = 0.0
    moves = numpy.full((n_tags + 1, n_tags + 1), -numpy.inf, dtype="f")
    moves[:n_tags, :n_tags] = trans
    moves[pad, :n_tags] = start
    moves[pad, pad] = 0.0
    backpointers = numpy.empty((n_steps, n_docs, n_tags + 1), dtype=numpy.min_scalar_type(pad))
    score = moves[pad][None, :] + padded[:, 0]
    for t in range(1, n_steps):
        candidates = score[:, :, None] + moves[None, :, :]
        backpointers[t] = candidates.argmax(axis=1)
        score = candidates.max(axis=1) + padded[:, t]
    best = numpy.empty((n_docs, n_steps), dtype="int64")
    best[:, -1] = score.argmax(axis=1)
    rows = numpy.arange(n_docs)
    for t in range(n_steps - 1, 0, -1):
        best[:, t - 1] = backpointers[t, rows, best[:, t]]
    return [best[i, n_steps - n :] for i, n in enumerate(lengths.tolist())]


def viterbi_flat(scores: Sequence[Floats2d], start: Floats1d, trans: Floats2d) -> Tuple[numpy.ndarray, numpy.ndarray]:
    """`viterbi(log_softmax(s), start, trans)` for each score table of a
    batch, the docs' tags concatenated, with the per-token work done once
    over the concatenated tables: the log softmax, the flooring of the
    emissions, the greedy tags and the check of their transitions. Only a
    doc whose greedy tags break a constraint runs the dynamic programme (as
    `viterbi` does).

    scores (Sequence[Floats2d]): Per doc, (n_tokens, n_tags) raw scores.
    start (Floats1d): (n_tags,) start scores, from `transition_constraints`.
    trans (Floats2d): (n_tags, n_tags) transition scores, from
        `transition_constraints`.
    RETURNS (Tuple[numpy.ndarray, numpy.ndarray]): The tag index of every
        token of the batch, and each doc's number of tokens.
    """
    lengths = numpy.asarray([int(table.shape[0]) for table in scores], dtype="int64")
    if not lengths.sum():
        return numpy.zeros((0,), dtype="int64"), lengths
    start_scores, trans_scores = numpy.asarray(start), numpy.asarray(trans)
    log_probs = _log_softmax(
        cast(Floats2d, numpy.concatenate([numpy.asarray(t, dtype="f") for t in scores if len(t)])), 1.0
    )
    emissions = numpy.clip(
        numpy.nan_to_num(log_probs, nan=MIN_LOG_PROB, posinf=0.0, neginf=MIN_LOG_PROB),
        MIN_LOG_PROB,
        0.0,
    )
    tags = emissions.argmax(axis=1)
    costless = (
        not start_scores[numpy.isfinite(start_scores)].any() and not trans_scores[numpy.isfinite(trans_scores)].any()
    )
    ends = numpy.cumsum(lengths)
    starts = ends - lengths
    live = lengths > 0
    # A doc keeps its greedy tags where its first tag may start a sequence
    # and every pair within it is allowed (pairs across docs do not count).
    broken = ~numpy.isfinite(trans_scores[tags[:-1], tags[1:]])
    broken[ends[live][:-1] - 1] = False
    n_broken = numpy.concatenate([[0], numpy.cumsum(broken)])
    bad = numpy.zeros(len(lengths), dtype=bool)
    bad[live] = (n_broken[ends[live] - 1] > n_broken[starts[live]]) | ~numpy.isfinite(start_scores[tags[starts[live]]])
    if not costless:
        bad = live
    redo = numpy.flatnonzero(bad).tolist()
    if redo:
        decoded = _viterbi_many([emissions[starts[i] : ends[i]] for i in redo], start_scores, trans_scores)
        for i, best in zip(redo, decoded):
            tags[starts[i] : ends[i]] = best
    return tags, lengths


def entity_columns(
    tag_ids: numpy.ndarray, lengths: numpy.ndarray, tags: Sequence[str], tag_hashes: Sequence[int]
) -> numpy.ndarray:
    """The entity attributes of every token of a batch of docs, as
    `bio_to_spans` reads each doc's tags: ENT_IOB (3 begins an entity, 1
    continues one, 2 is outside; an I-X that continues no X entity begins
    one) and ENT_TYPE, the columns that `Doc.from_array` sets.

    tag_ids (numpy.ndarray): The docs' tag indices into `tags`, concatenated.
    lengths (numpy.ndarray): Each doc's number of tokens.
    tags (Sequence[str]): The tag set: "O", "B-X" and "I-X".
    tag_hashes (Sequence[int]): Each tag's label as a StringStore hash (0 for O).
    RETURNS (numpy.ndarray): (n_tokens, 2) uint64: ENT_IOB, ENT_TYPE.
    """
    n_tags = len(tags)
    labels = {tag[2:] for tag in tags if tag != OUTSIDE}
    label_index = {label: i for i, label in enumerate(sorted(labels))}
    # One extra tag, n_tags, stands for "no previous token" (a doc's start).
    inside = numpy.asarray([tag.startswith("I-") for tag in tags] + [False])
    label_of = numpy.asarray([label_index.get(tag[2:], -1) if tag != OUTSIDE else -1 for tag in tags] + [-1])
    tag_ids = numpy.asarray(tag_ids, dtype="int64")
    lengths = numpy.asarray(lengths, dtype="int64")
    previous = numpy.concatenate([[n_tags], tag_ids[:-1]]).astype("int64")
    previous[(numpy.cumsum(lengths) - lengths)[lengths > 0]] = n_tags
    continues = inside[tag_ids] & (label_of[previous] >= 0) & (label_of[previous] == label_of[tag_ids])
    columns = numpy.empty((len(tag_ids), 2), dtype="uint64")
    columns[:, 0] = numpy.where(label_of[tag_ids] < 0, 2, numpy.where(continues, 1, 3))
    columns[:, 1] = numpy.asarray(tag_hashes, dtype="uint64")[tag_ids]
    return columns


def bio_to_spans(tags: Sequence[str]) -> List[Tuple[int, int, str]]:
    """Token spans (start, end, label) of a valid BIO tag sequence."""
    spans: List[Tuple[int, int, str]] = []
    start: Optional[int] = None
    label = ""
    for i, tag in enumerate(tags):
        if tag.startswith("I-") and start is not None and tag[2:] == label:
            continue
        if start is not None:
            spans.append((start, i, label))
            start = None
        if tag != OUTSIDE:
            # An I-X that cannot continue a span (only reachable when the
            # sequence was not decoded under the constraints) opens one.
            start, label = i, tag[2:]
    if start is not None:
        spans.append((start, len(tags), label))
    return spans
