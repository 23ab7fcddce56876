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
    backpointers = numpy.zeros((n_tokens, emissions.shape[1]), dtype="i")
    score = start_scores + emissions[0]
    for t in range(1, n_tokens):
        candidates = score[:, None] + trans_scores
        backpointers[t] = candidates.argmax(axis=0)
        score = candidates.max(axis=0) + emissions[t]
    best = [int(score.argmax())]
    for t in range(n_tokens - 1, 0, -1):
        best.append(int(backpointers[t, best[-1]]))
    best.reverse()
    return best


def viterbi_batch(scores: Sequence[Floats2d], start: Floats1d, trans: Floats2d) -> List[List[int]]:
    """`viterbi(log_softmax(s), start, trans)` for each score table of a
    batch, with the per-token work done once over the concatenated tables:
    the log softmax, the flooring of the emissions, the greedy tags and the
    check of their transitions. Only a doc whose greedy tags break a
    constraint runs the dynamic programme (as `viterbi` does).

    scores (Sequence[Floats2d]): Per doc, (n_tokens, n_tags) raw scores.
    start (Floats1d): (n_tags,) start scores, from `transition_constraints`.
    trans (Floats2d): (n_tags, n_tags) transition scores, from
        `transition_constraints`.
    RETURNS (List[List[int]]): Per doc, one tag index per token.
    """
    lengths = [int(table.shape[0]) for table in scores]
    if not sum(lengths):
        return [[] for _ in lengths]
    start_scores, trans_scores = numpy.asarray(start), numpy.asarray(trans)
    log_probs = _log_softmax(
        cast(Floats2d, numpy.concatenate([numpy.asarray(t, dtype="f") for t in scores if len(t)])), 1.0
    )
    emissions = numpy.clip(
        numpy.nan_to_num(log_probs, nan=MIN_LOG_PROB, posinf=0.0, neginf=MIN_LOG_PROB),
        MIN_LOG_PROB,
        0.0,
    )
    greedy = emissions.argmax(axis=1)
    costless = (
        not start_scores[numpy.isfinite(start_scores)].any() and not trans_scores[numpy.isfinite(trans_scores)].any()
    )
    allowed_next = numpy.isfinite(trans_scores[greedy[:-1], greedy[1:]])
    ends = numpy.cumsum(lengths)
    starts = ends - numpy.asarray(lengths)
    # allowed_next[i] is the pair (i, i + 1): a doc checks begin .. end - 2,
    # never the pair across its end.
    out: List[List[int]] = []
    for begin, end in zip(starts.tolist(), ends.tolist()):
        if begin == end:
            out.append([])
        elif costless and numpy.isfinite(start_scores[greedy[begin]]) and allowed_next[begin : end - 1].all():
            out.append(greedy[begin:end].tolist())
        else:
            out.append(viterbi(cast(Floats2d, log_probs[begin:end]), start, trans))
    return out


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
