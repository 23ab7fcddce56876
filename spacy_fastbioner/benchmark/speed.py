"""Timing primitives: batches of gold-tokenised docs, one pipeline call or one
raw Hugging Face forward pass per batch, and robust summaries (median with a
bootstrap 95% interval, as `spacy benchmark speed` reports the mean)."""

import random
import time
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import numpy
import torch
from spacy.language import Language
from spacy.tokens import Doc

from ..encoder.inputs import RawBatch
from ..runtime.packing import pack_batch

Words = List[str]
Spaces = List[bool]


def make_batches(n_docs: int, batch_size: int, n_batches: int, *, seed: int = 0) -> List[List[int]]:
    """Doc indices of `n_batches` batches of `batch_size` docs: a seeded
    shuffle of the docs, cut into batches, reshuffled when it runs out.

    RETURNS (List[List[int]]): The batches, as indices into the docs.
    """
    if n_docs == 0:
        raise ValueError("cannot benchmark on an empty corpus")
    rng = random.Random(seed)
    order: List[int] = []
    batches = []
    for _ in range(n_batches):
        batch: List[int] = []
        while len(batch) < batch_size:
            if not order:
                order = list(range(n_docs))
                rng.shuffle(order)
            batch.append(order.pop())
        batches.append(batch)
    return batches


def time_pipeline(nlp: Language, docs: List[Doc], batch_size: Optional[int] = None) -> float:
    """Seconds that `nlp.pipe` takes to annotate the docs.

    batch_size (Optional[int]): The pipe's batch size; all docs at once when None.
    """
    start = time.perf_counter()
    for _ in nlp.pipe(docs, batch_size=batch_size or max(1, len(docs))):
        pass
    return time.perf_counter() - start


def time_doc(nlp: Language, doc: Doc) -> float:
    """Seconds that the pipeline takes to annotate one doc on its own."""
    start = time.perf_counter()
    nlp(doc)
    return time.perf_counter() - start


def count_wordpieces(batches: RawBatch, *, packed: bool = False, max_width: Optional[int] = None) -> Tuple[int, int]:
    """The real and the computed (padded) number of wordpieces in prepared
    batches.

    packed (bool): The encoder packs its batches (runtime/packing.py): count
        the positions of the packed rows.
    max_width (Optional[int]): The packed rows' widest (position embeddings).
    RETURNS (Tuple[int, int]): (real, padded).
    """
    real = sum(int(kwargs["attention_mask"].sum()) for kwargs in batches)
    if packed:
        padded = sum(pack_batch(kwargs, max_width).inputs["input_ids"].size for kwargs in batches)
    else:
        padded = sum(int(kwargs["attention_mask"].numel()) for kwargs in batches)
    return real, padded


def time_raw_forward(transformer: torch.nn.Module, batches: RawBatch) -> float:
    """Seconds of the Hugging Face model's forward pass alone on prepared
    wordpiece batches, under `torch.inference_mode` (the compute floor)."""
    transformer.eval()
    start = time.perf_counter()
    with torch.inference_mode():
        for kwargs in batches:
            transformer(**kwargs)
    return time.perf_counter() - start


def bootstrap_interval(
    values: Sequence[float],
    statistic: Callable[[numpy.ndarray], float] = numpy.median,
    *,
    iterations: int = 2000,
    seed: int = 0,
) -> List[float]:
    """The 95% bootstrap interval of a statistic of a sample (percentile
    method, as `spacy benchmark speed` computes it for the mean).

    RETURNS (List[float]): [low, high].
    """
    sample = numpy.asarray(values, dtype="f8")
    rng = numpy.random.default_rng(seed)
    stats = numpy.sort([statistic(rng.choice(sample, len(sample), replace=True)) for _ in range(iterations)])
    return [float(stats[int(iterations * 0.025)]), float(stats[int(iterations * 0.975) - 1])]


def summarize(values: Sequence[float]) -> Dict[str, Any]:
    """Median, 95% bootstrap interval of the median, and the sample.

    RETURNS (Dict[str, Any]): Keys median, ci95 ([low, high]), n, values.
    """
    if not len(values):
        return {"median": None, "ci95": [None, None], "n": 0, "values": []}
    return {
        "median": float(numpy.median(values)),
        "ci95": bootstrap_interval(values),
        "n": len(values),
        "values": [float(v) for v in values],
    }


def percentiles_ms(seconds: Sequence[float]) -> Dict[str, Any]:
    """p50 and p95 in milliseconds of a sample of durations in seconds."""
    if not len(seconds):
        return {"p50": None, "p95": None, "n": 0}
    ms = numpy.asarray(seconds) * 1000.0
    return {
        "p50": float(numpy.percentile(ms, 50)),
        "p95": float(numpy.percentile(ms, 95)),
        "n": len(seconds),
    }
