"""Synthetic tagged sentences: outside words and entity phrases at random, with
IOB2 tags. Calibration text for the paper-shape benchmark's random-weight
models, and training data for the tests' tiny models."""

import random
from typing import List, Sequence, Tuple

ENTITY_WORDS = {
    "Disease": [
        ["cancer"],
        ["diabetes"],
        ["breast", "cancer"],
        ["colon", "cancer"],
        ["hereditary", "colitis"],
        ["tumour"],
    ],
    "Chemical": [["aspirin"], ["naloxone"], ["clonidine"], ["lithium", "carbonate"]],
}
OUTSIDE_WORDS = (
    "the patients with a of and were treated for in this study we report that "
    "mice showed no signs after induced by high dose levels"
).split()


def synthetic_sentences(
    n: int, *, seed: int = 0, labels: Sequence[str] = ("Disease", "Chemical")
) -> List[Tuple[List[str], List[str]]]:
    """Random sentences of outside words and entities, with IOB2 tags."""
    rng = random.Random(seed)
    sentences = []
    for _ in range(n):
        words: List[str] = []
        tags: List[str] = []
        for _ in range(rng.randint(4, 12)):
            if rng.random() < 0.25:
                label = rng.choice(list(labels))
                entity = rng.choice(ENTITY_WORDS[label])
                words.extend(entity)
                tags.extend([f"B-{label}"] + [f"I-{label}"] * (len(entity) - 1))
            else:
                words.append(rng.choice(OUTSIDE_WORDS))
                tags.append("O")
        sentences.append((words, tags))
    return sentences
