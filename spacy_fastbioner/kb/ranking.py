"""A learned link score: the probability that a candidate is the mention's concept.

The cosine of the 3-gram vectors alone does not tell "congenital heart disease" -> "heart
disease" (annotators link to the more general concept: right) from "diuretic" -> "loop
diuretic" (a more specific concept: wrong) or "vitamin c" -> "vitamin d". A logistic
regression over a few features of the pair (cosine, exact match, prior, how many words of
each side the other covers, the margin over the next concept) separates them, and its
probability is a score that a threshold can cut: below it the mention stays NIL.

It is fitted by `fit_ranker` on the training corpus itself, by cross-validation over
documents (a KB from the other folds), so that it sees mentions whose concept the KB lacks,
as dev and test mentions will be. Its weights are a handful of floats kept in the KB's JSON.
"""

import math
import random
from functools import lru_cache
from typing import Callable, Dict, FrozenSet, List, Optional, Protocol, Sequence, Set, Tuple

import numpy as np

from .candidates import Candidate
from .names import normalize, split_identifiers


class CandidateSource(Protocol):
    """What fitting the ranker needs of a knowledge base (`lookup.ConceptKB`)."""

    def get_candidates_batch(
        self, mentions: Sequence[str], type_: Optional[str], *, k: int = 10
    ) -> List[List[Candidate]]: ...

    def get_entity_freq(self, entity: str) -> int: ...


FEATURES = (
    "cosine",
    "exact",
    "stem",
    "prior",
    "mention_covered",
    "alias_covered",
    "margin",
    "rank",
    "short_mention",
    "log_freq",
    "head",
    "char_dice",
    "length_ratio",
    "variant",
)
# Rankers fitted before a feature was added have fewer weights: the missing ones (features
# are only ever appended) count as 0, which gives the scores they were fitted to give.
STOPWORDS = frozenset("of the and or in to with a an for by on".split())
Ranker = Dict[str, List[float]]  # {"coef": [...], "intercept": [b]}
KBFactory = Callable[[Set[int]], CandidateSource]  # training document indices -> a KB of their names


def _words(text: str) -> List[str]:
    words = text.split()
    return [w for w in words if w not in STOPWORDS] or words


@lru_cache(maxsize=2**16)  # words repeat across mentions and candidates
def _grams(word: str) -> FrozenSet[str]:
    padded = f" {word} "
    return frozenset(padded[i : i + 3] for i in range(len(padded) - 2))


def _covered(words: Sequence[str], others: Sequence[str]) -> float:
    """The share of words with a close word (3-gram Dice >= 0.7) among the others."""
    if not words:
        return 0.0
    other_grams = [_grams(o) for o in others]
    hits = 0
    for word in words:
        grams = _grams(word)
        hits += word in others or any(2 * len(grams & og) / (len(grams) + len(og)) >= 0.7 for og in other_grams)
    return hits / len(words)


@lru_cache(maxsize=2**16)
def _bigrams(key: str) -> FrozenSet[str]:
    return frozenset(key[i : i + 2] for i in range(len(key) - 1)) or frozenset([key])


def char_dice(a: str, b: str) -> float:
    """Dice overlap of the character bigrams of two normal forms, spaces removed: unlike the
    3-gram cosine (3-grams of each word), it does not care where words split ("thrombo
    embolism" and "thrombembolism", "muscle" and "muscular" stay close)."""
    ga, gb = _bigrams(a.replace(" ", "")), _bigrams(b.replace(" ", ""))
    return 2 * len(ga & gb) / (len(ga) + len(gb))


def is_head(words: Sequence[str], alias_words: Sequence[str]) -> bool:
    """Whether the alias is the mention's last words, the mention having more: its head noun
    phrase without modifiers ("sporadic wilm neoplasm" -> "wilm neoplasm", "bilateral
    aniridia" -> "aniridia")."""
    n = len(alias_words)
    return 0 < n < len(words) and list(words[-n:]) == list(alias_words)


def pair_features(mention: str, candidates: Sequence[Candidate], freqs: Sequence[int]) -> np.ndarray:
    """The features of each candidate of a mention, in `FEATURES` order.

    mention (str): The mention's text.
    candidates (Sequence[Candidate]): Its candidates, best first.
    freqs (Sequence[int]): Each candidate concept's frequency in the KB's sources.
    RETURNS (np.ndarray): (len(candidates), len(FEATURES)) float32.
    """
    text = normalize(mention)
    words = _words(text)
    key = text.replace(" ", "")
    rows = []
    for rank, (candidate, freq) in enumerate(zip(candidates, freqs)):
        others = [c.similarity for c in candidates if c.entity_ != candidate.entity_]
        alias_words = _words(candidate.alias_)
        alias_key = candidate.alias_.replace(" ", "")
        rows.append(
            [
                candidate.similarity,
                float(candidate.match == "exact"),
                float(candidate.match == "stem"),
                candidate.prior_prob,
                _covered(words, alias_words),
                _covered(alias_words, words),
                candidate.similarity - (max(others) if others else 0.0),
                math.log1p(rank),
                float(len(text.replace(" ", "")) <= 5),
                math.log1p(freq),
                float(is_head(words, alias_words)),
                char_dice(text, candidate.alias_),
                min(len(key), len(alias_key)) / max(len(key), len(alias_key), 1),
                float(candidate.match == "variant"),
            ]
        )
    return np.asarray(rows, dtype=np.float32).reshape(len(rows), len(FEATURES))


def rank_scores(ranker: Ranker, features: np.ndarray) -> np.ndarray:
    """The ranker's probability for each row of features."""
    coef = np.zeros(features.shape[1], dtype=np.float32)
    coef[: len(ranker["coef"])] = ranker["coef"]  # an older ranker: the features added since weigh 0
    logits = features @ coef + float(ranker["intercept"][0])
    return 1.0 / (1.0 + np.exp(-logits))


def fit_ranker(
    mentions: Sequence[Tuple[str, str, str, int]],
    make_kb: KBFactory,
    *,
    n_folds: int = 5,
    k: int = 10,
    seed: int = 0,
) -> Optional[Ranker]:
    """Fit the ranker by cross-validation over documents.

    mentions (Sequence[Tuple[str, str, str, int]]): (text, label, identifier, document index) of
        every gold mention of the training corpus; identifiers "-1" or "" mean no concept.
    make_kb (KBFactory): Builds a KB from the training documents whose indices it is given.
    n_folds (int): The number of folds.
    k (int): Candidates per mention.
    seed (int): Seeds the split of documents into folds.
    RETURNS (Optional[Ranker]): The weights, or None if the data has only one class.
    """
    from sklearn.linear_model import LogisticRegression

    docs = sorted({m[3] for m in mentions})
    random.Random(seed).shuffle(docs)
    fold_of = {d: i % n_folds for i, d in enumerate(docs)}
    xs: List[np.ndarray] = []
    ys: List[np.ndarray] = []
    for fold in range(n_folds):
        kb = make_kb({d for d in docs if fold_of[d] != fold})
        held = [m for m in mentions if fold_of[m[3]] == fold]
        for label in sorted({m[1] for m in held}):
            group = [m for m in held if m[1] == label]
            found = kb.get_candidates_batch([m[0] for m in group], label, k=k)
            for (text, _, concept, _), candidates in zip(group, found):
                if candidates:
                    gold = set(split_identifiers(concept))
                    freqs = [kb.get_entity_freq(c.entity_) for c in candidates]
                    xs.append(pair_features(text, candidates, freqs))
                    ys.append(np.asarray([set(split_identifiers(c.entity_)) == gold for c in candidates]))
    if not xs:
        return None
    x, y = np.concatenate(xs), np.concatenate(ys)
    if y.all() or not y.any():
        return None
    model = LogisticRegression(C=1.0, max_iter=1000).fit(x, y)
    return {"coef": [float(c) for c in model.coef_[0]], "intercept": [float(model.intercept_[0])]}
