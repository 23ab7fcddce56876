"""The cost of input shapes that an encoder meets for the first time.

Runtimes that compile kernels per input shape (OpenVINO's CPU plugin, and
`torch.compile`) run a batch of a new shape slower than one they have seen.
A spaCy pipeline's sub-batches come in ever new shapes (number of spans by
number of wordpieces), so the benchmark's pipeline figures include that cost.
`time_shape_passes` separates it: one pass over batches never seen, one over
other batches (some of their shapes seen), and the latter again (all seen).
"""

import time
from typing import Any, Callable, Dict, Sequence

from ..encoder.inputs import RawBatch

Forward = Callable[[Dict[str, Any]], Any]


def time_forward(forward: Forward, batches: Sequence[RawBatch]) -> float:
    """Seconds that the encoder call takes over every sub-batch of the batches."""
    start = time.perf_counter()
    for batch in batches:
        for kwargs in batch:
            forward(kwargs)
    return time.perf_counter() - start


def time_shape_passes(
    forward: Forward, first: Sequence[RawBatch], later: Sequence[RawBatch], words: Sequence[int]
) -> Dict[str, Any]:
    """Words/sec of an encoder call over batches whose shapes it has not
    seen (`first`), over other batches (`later`), and over `later` again.

    forward (Callable[[Dict[str, Any]], Any]): The encoder, called with one
        sub-batch's keyword arguments; fresh (no batch run yet).
    first (Sequence[RawBatch]): Batches, each a list of sub-batches.
    later (Sequence[RawBatch]): Other batches.
    words (Sequence[int]): The words of `first` and of `later`.
    RETURNS (Dict[str, Any]): words_per_sec for "first", "later" and
        "repeated", and the number of distinct shapes in each set.
    """
    seconds = {
        "first": time_forward(forward, first),
        "later": time_forward(forward, later),
        "repeated": time_forward(forward, later),
    }
    n_words = {"first": words[0], "later": words[1], "repeated": words[1]}

    def shapes(batches: Sequence[RawBatch]) -> int:
        return len({tuple(kwargs["input_ids"].shape) for batch in batches for kwargs in batch})

    return {
        "words_per_sec": {key: n_words[key] / value for key, value in seconds.items()},
        "shapes": {"first": shapes(first), "later": shapes(later), "both": shapes(list(first) + list(later))},
    }
