"""Benchmark several pipelines in one process on the same docs: accuracy,
throughput (pipeline and raw transformer forward pass), latency, size,
parameters and memory.

The machine is shared and noisy, so the models are timed round-robin: every
batch is annotated by every model in turn (the order rotating from batch to
batch), and each figure is a median over batches with a bootstrap interval.
Speed-ups are medians of per-batch ratios, paired on the same batch.

Timed batches are new combinations of docs, so their padded input shapes are
often new to the runtime, and OpenVINO compiles kernels for each shape that it
sees first. A second pass times the same batches again (every shape seen),
which is what a long annotation job settles into; both passes are reported.
"""

import gc
import os
import platform
import random
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import numpy
import spacy
import torch
from spacy.language import Language
from spacy.scorer import get_ner_prf
from spacy.tokens import Doc
from spacy.training import Example

from ..encoder.inputs import fresh_docs, raw_batches
from ..encoder.transformer import count_parameters, find_transformer, hf_model
from ..loading import load_pipeline
from ..runtime.architecture import is_runtime_transformer
from ..runtime.packing import max_row_width
from ..runtime.quantize import is_quantized
from ..util.disk_size import size_on_disk
from ..util.threads import set_threads
from .cpu import cpu_info
from .data import load_gold_docs
from .memory import METHOD as MEMORY_METHOD
from .memory import measure_memory
from .speed import (
    count_wordpieces,
    make_batches,
    percentiles_ms,
    summarize,
    time_doc,
    time_pipeline,
    time_raw_forward,
)
from .variants import apply_torch_variant, split_variant

Log = Callable[[str], None]
MODEL_DIRS = ("model-best", "model-last")


@dataclass
class BenchmarkSettings:
    """How to benchmark.

    batch_size (int): Docs per timed batch (`nlp.pipe(batch_size=...)`).
    n_batches (int): Timed batches per model, after the warm-up.
    warmup (int): Batches per model run first and not counted.
    threads (Optional[int]): `torch.set_num_threads`; torch's default when None.
    max_batch_items (Optional[int]): Set every padded transformer's
        `max_batch_items` (the padded size of the length-sorted sub-batches that
        `Transformer.pipe` cuts a batch into); as saved when None.
    packed_batch_items (Optional[int]): The same for every packed transformer
        (runtime/packing.py), which computes no padding, so that its best size
        is larger (fewer calls); as saved when None.
    n_latency (int): Docs annotated one at a time for the ms/doc percentiles.
    repeat (bool): Time the same batches a second time, after every model has
        annotated each of them once (the "shapes seen" figures).
    accuracy (bool): Annotate all docs and score them (P/R/F).
    memory (bool): Measure peak memory in a child process per model.
    memory_docs (int): Docs annotated by the memory child.
    reference (Optional[str]): The model that speed-ups are relative to; the first when None.
    seed (int): Seed of the batch sampling.
    """

    batch_size: int = 64
    n_batches: int = 20
    warmup: int = 3
    threads: Optional[int] = None
    max_batch_items: Optional[int] = None
    packed_batch_items: Optional[int] = None
    n_latency: int = 50
    repeat: bool = True
    accuracy: bool = True
    memory: bool = True
    memory_docs: int = 256
    reference: Optional[str] = None
    seed: int = 0


@dataclass
class _Candidate:
    name: str
    path: str
    nlp: Language
    gold: List[Doc]
    trf: Optional[Any] = None
    pipe_seconds: List[float] = field(default_factory=list)
    raw_seconds: List[float] = field(default_factory=list)
    repeat_seconds: List[float] = field(default_factory=list)
    doc_seconds: List[float] = field(default_factory=list)
    wordpieces: List[int] = field(default_factory=lambda: [0, 0])
    variant: str = ""

    @property
    def transformer(self) -> Optional[torch.nn.Module]:
        return None if self.trf is None else self.trf.model.transformer


def _version(package: str) -> Optional[str]:
    from spacy.util import get_package_version

    return get_package_version(package)


def parse_model_arg(arg: str) -> Tuple[str, str]:
    """A `name=path` argument, or a path named after its folder (the folder
    above for model-best / model-last).

    RETURNS (Tuple[str, str]): The name and the path or package name.
    """
    if "=" in arg and not Path(arg).exists():
        name, _, model = arg.partition("=")
        return name, model
    folder = Path(arg)
    name = folder.parent.name if folder.name in MODEL_DIRS and folder.parent.name else folder.name
    return name or arg, arg


# The benchmark's name of each inference runtime (its distribution's name).
RUNTIME_NAMES = {"onnx": "onnxruntime", "openvino": "openvino"}


def describe(nlp: Language, trf: Optional[Any]) -> Dict[str, Any]:
    """What a pipeline is: components, transformer shape, quantisation, parameters."""
    info: Dict[str, Any] = {"pipeline": list(nlp.pipe_names), "transformer": None}
    if trf is not None:
        hf: Any = hf_model(trf)
        config = hf.config
        in_runtime = is_runtime_transformer(hf)
        info["transformer"] = {
            "model_type": config.model_type,
            "layers": int(config.num_hidden_layers),
            "hidden": int(config.hidden_size),
            "heads": int(config.num_attention_heads),
            "vocab": int(config.vocab_size),
            "quantized": hf.is_int8 if in_runtime else is_quantized(hf),
            "runtime": RUNTIME_NAMES[hf.runtime] if in_runtime else "pytorch",
            "packed": bool(in_runtime and hf.packed),
            "attention": None if in_runtime else getattr(config, "_attn_implementation", None),
            "max_batch_items": int(trf.cfg.get("max_batch_items", 0)),
        }
    try:
        info["parameters"] = count_parameters(nlp)
    except ImportError:  # counting ONNX weights needs the onnx package, running them does not
        info["parameters"] = {"transformer": None, "total": None}
    return info


def _batch_items(settings: BenchmarkSettings, trf: Any) -> Optional[int]:
    """The `max_batch_items` that the settings give a transformer component
    (None: keep its own)."""
    if trf is None:
        return None
    packed = bool(getattr(hf_model(trf), "packed", False))
    return settings.packed_batch_items if packed else settings.max_batch_items


def score(nlp: Language, gold: List[Doc], batch_size: int) -> Tuple[Dict[str, Any], float]:
    """Annotate every doc (gold tokens) and score the entities.

    RETURNS (Tuple[Dict[str, Any], float]): P/R/F overall and per type, and
        the seconds that annotation took.
    """
    docs = fresh_docs(nlp, gold)
    start = time.perf_counter()
    predicted = list(nlp.pipe(docs, batch_size=batch_size))
    seconds = time.perf_counter() - start
    scores = get_ner_prf([Example(p, g) for p, g in zip(predicted, gold)])
    per_type = {
        label: {k: float(v) for k, v in prf.items()} for label, prf in (scores.get("ents_per_type") or {}).items()
    }
    return {
        "p": float(scores["ents_p"] or 0.0),
        "r": float(scores["ents_r"] or 0.0),
        "f": float(scores["ents_f"] or 0.0),
        "per_type": per_type,
    }, seconds


def benchmark_pipelines(
    models: Sequence[Tuple[str, str]],
    data_path: Path,
    settings: BenchmarkSettings = BenchmarkSettings(),
    *,
    log: Log = print,
) -> Dict[str, Any]:
    """Benchmark pipelines on the same docs in this process.

    models (Sequence[Tuple[str, str]]): (name, path or package) per pipeline;
        a path may end in "#compile", "#eager" or "#sdpa" for a PyTorch option
        applied after loading (variants.py; memory is measured without it).
    data_path (Path): Gold docs: a .spacy DocBin or an IOB2 .tsv file.
    settings (BenchmarkSettings): How to benchmark.
    log (Callable[[str], None]): Where progress goes.
    RETURNS (Dict[str, Any]): The results: "settings", "environment" and one
        entry per model under "models"; "methods" says how each figure is measured.
    """
    names = [name for name, _ in models]
    if len(set(names)) != len(names):
        raise ValueError(f"model names must be unique, got {names}")
    reference = settings.reference or names[0]
    if reference not in names:
        raise ValueError(f"reference model {reference!r} is not one of {names}")
    if settings.threads:
        set_threads(settings.threads)
    candidates = []
    for name, spec in models:
        path, variant = split_variant(spec)
        log(f"Loading {name} from {path}" + (f" ({variant})" if variant else ""))
        nlp = load_pipeline(path)
        try:
            trf = find_transformer(nlp)
        except ValueError:
            trf = None
        if variant:
            if trf is None:
                raise ValueError(f"{name}: the {variant!r} variant needs a transformer pipeline")
            apply_torch_variant(nlp, trf, variant)
        batch_items = _batch_items(settings, trf)
        if trf is not None and batch_items:
            trf.cfg["max_batch_items"] = batch_items
        candidates.append(_Candidate(name, str(path), nlp, load_gold_docs(data_path, nlp.vocab), trf, variant=variant))
    # Every pipeline is loaded here at once: without this, each full garbage
    # collection traverses all of them and its pauses land on whichever model
    # allocates (a process that serves one pipeline can freeze it the same way).
    gc.collect()
    gc.freeze()
    n_docs = len(candidates[0].gold)
    n_words = sum(len(doc) for doc in candidates[0].gold)
    log(f"{n_docs} docs, {n_words} words in {data_path}")

    batches = make_batches(n_docs, settings.batch_size, settings.warmup + settings.n_batches, seed=settings.seed)
    batch_words = [sum(len(candidates[0].gold[j]) for j in batch) for batch in batches]
    for i, batch in enumerate(batches):
        for k in range(len(candidates)):
            cand = candidates[(i + k) % len(candidates)]
            docs = fresh_docs(cand.nlp, [cand.gold[j] for j in batch])
            seconds = time_pipeline(cand.nlp, docs)
            raw = None
            if cand.transformer is not None:
                inputs = raw_batches(cand.trf, docs)
                raw = time_raw_forward(cand.transformer, inputs)
            if i >= settings.warmup:
                cand.pipe_seconds.append(seconds)
                if raw is not None:
                    cand.raw_seconds.append(raw)
                    encoder: Any = cand.transformer
                    real, padded = count_wordpieces(
                        inputs,
                        packed=bool(getattr(encoder, "packed", False)),
                        max_width=max_row_width(encoder.config),
                    )
                    cand.wordpieces[0] += real
                    cand.wordpieces[1] += padded
        if i + 1 == settings.warmup:
            log(f"Warmed up on {settings.warmup} batches per model")
        elif i >= settings.warmup and ((i - settings.warmup + 1) % 5 == 0 or i + 1 == len(batches)):
            done = ", ".join(f"{c.name} {batch_words[i] / c.pipe_seconds[-1]:,.0f}" for c in candidates)
            log(f"Batch {i - settings.warmup + 1}/{settings.n_batches} (words/s): {done}")
    if settings.repeat:
        log(f"Timing the {settings.n_batches} batches again, every shape seen")
        for i, batch in enumerate(batches[settings.warmup :]):
            for k in range(len(candidates)):
                cand = candidates[(i + k) % len(candidates)]
                docs = fresh_docs(cand.nlp, [cand.gold[j] for j in batch])
                cand.repeat_seconds.append(time_pipeline(cand.nlp, docs))

    rng = random.Random(settings.seed + 1)
    latency_docs = [rng.randrange(n_docs) for _ in range(settings.n_latency)]
    if latency_docs:
        log(f"Timing {len(latency_docs)} docs one at a time")
    for i, j in enumerate(latency_docs):
        for k in range(len(candidates)):
            cand = candidates[(i + k) % len(candidates)]
            cand.doc_seconds.append(time_doc(cand.nlp, fresh_docs(cand.nlp, [cand.gold[j]])[0]))

    timed_words = numpy.asarray(batch_words[settings.warmup :], dtype="f8")
    ref = next(c for c in candidates if c.name == reference)
    ref_wps = timed_words / numpy.asarray(ref.pipe_seconds)
    results = []
    for cand in candidates:
        entry: Dict[str, Any] = {"name": cand.name, "path": cand.path, "variant": cand.variant or None}
        entry.update(describe(cand.nlp, cand.trf))
        size = size_on_disk(cand.path)
        entry["size_mb"] = size / 2**20 if size is not None else None
        wps = timed_words / numpy.asarray(cand.pipe_seconds)
        speed: Dict[str, Any] = {"words_per_sec": summarize(wps)}
        if cand.raw_seconds:
            raw_wps = timed_words / numpy.asarray(cand.raw_seconds)
            speed["raw_forward_words_per_sec"] = summarize(raw_wps)
            speed["pipeline_vs_raw"] = summarize(numpy.asarray(cand.raw_seconds) / numpy.asarray(cand.pipe_seconds))
            speed["wordpieces"] = {
                "real": cand.wordpieces[0],
                "padded": cand.wordpieces[1],
                "padding": 1.0 - cand.wordpieces[0] / max(1, cand.wordpieces[1]),
            }
        else:
            speed["raw_forward_words_per_sec"] = None
            speed["pipeline_vs_raw"] = None
            speed["wordpieces"] = None
        speedup = summarize(wps / ref_wps)
        speed["speedup_vs_reference"] = speedup
        speed["time_reduction_vs_reference"] = 1.0 - 1.0 / speedup["median"]
        speed["repeat"] = _repeat_speed(cand, ref, timed_words) if settings.repeat else None
        speed["ms_per_doc"] = percentiles_ms(cand.doc_seconds)
        entry["speed"] = speed
        if settings.accuracy:
            log(f"Scoring {cand.name} on all {n_docs} docs")
            accuracy, seconds = score(cand.nlp, cand.gold, settings.batch_size)
            entry["accuracy"] = accuracy
            speed["full_pass_words_per_sec"] = n_words / seconds
            log(f"{cand.name}: F {accuracy['f']:.4f} (P {accuracy['p']:.4f}, R {accuracy['r']:.4f})")
        else:
            entry["accuracy"] = None
        if settings.memory:
            log(f"Measuring memory of {cand.name} in a child process")
            entry["memory"] = measure_memory(
                cand.path,
                data_path,
                n_docs=settings.memory_docs,
                batch_size=settings.batch_size,
                threads=settings.threads,
                max_batch_items=_batch_items(settings, cand.trf),
            )
        else:
            entry["memory"] = None
        results.append(entry)
    ref_f = next(r for r in results if r["name"] == reference)["accuracy"]
    for entry in results:
        if entry["accuracy"] is not None and ref_f is not None:
            entry["accuracy"]["f_vs_reference"] = entry["accuracy"]["f"] - ref_f["f"]
    gc.unfreeze()
    return {
        "settings": {**asdict(settings), "reference": reference},
        "data": {"path": str(data_path), "docs": n_docs, "words": n_words},
        "environment": {
            "torch_threads": torch.get_num_threads(),
            "tokenizers_parallelism": os.environ.get("TOKENIZERS_PARALLELISM"),
            "torch": torch.__version__,
            "spacy": spacy.__version__,
            "python": platform.python_version(),
            "machine": platform.machine(),
            "processor": platform.processor(),
            "cpus": os.cpu_count(),
            "quantized_engine": torch.backends.quantized.engine,
            "cpu": cpu_info(),
            "onnxruntime": _version("onnxruntime"),
            "openvino": _version("openvino"),
        },
        "methods": {
            "words_per_sec": "spaCy tokens of the gold docs / seconds of nlp.pipe on a batch of "
            "fresh gold-tokenised docs, per batch after the warm-up; median and 95% bootstrap "
            "interval of the median over batches; models alternate round-robin",
            "raw_forward_words_per_sec": "the same words / seconds of the Hugging Face model's "
            "forward pass alone under torch.inference_mode, on the wordpiece batches that the "
            "transformer component makes for the same docs (tokenised outside the timing)",
            "pipeline_vs_raw": "per-batch raw forward seconds / pipeline seconds; the raw pass runs "
            "after the pipeline on the batch's wordpieces, so its input shapes are not new to the runtime",
            "repeat": "the same timed batches annotated a second time, after every model has annotated "
            "each of them once (every input shape seen, a long job's steady state): words/sec, "
            "speed-up and pipeline_vs_raw against the first pass's raw forward seconds",
            "speedup_vs_reference": "per-batch words/sec ratio against the reference model on the same batch",
            "ms_per_doc": "one doc per nlp() call, percentiles over sampled docs",
            "gc": "gc.collect() and gc.freeze() after loading every pipeline, before timing",
            "accuracy": "spacy.scorer.get_ner_prf on all docs, gold tokens (as spacy evaluate --gold-preproc)",
            "memory": MEMORY_METHOD,
        },
        "models": results,
    }


def _repeat_speed(cand: _Candidate, ref: _Candidate, timed_words: numpy.ndarray) -> Dict[str, Any]:
    """The second pass's words/sec, speed-up against the reference's second
    pass, and share of the raw forward pass (both with every shape seen)."""
    seconds = numpy.asarray(cand.repeat_seconds)
    wps = timed_words / seconds
    return {
        "words_per_sec": summarize(wps),
        "speedup_vs_reference": summarize(wps / (timed_words / numpy.asarray(ref.repeat_seconds))),
        "pipeline_vs_raw": summarize(numpy.asarray(cand.raw_seconds) / seconds) if cand.raw_seconds else None,
    }


def benchmark_threads(
    models: Sequence[Tuple[str, str]],
    data_path: Path,
    settings: BenchmarkSettings,
    threads: Sequence[int],
    *,
    log: Log = print,
) -> Dict[str, Any]:
    """`benchmark_pipelines` once per thread count, merged into one table:
    each row is named "<model> (<n>t)" when there are several counts, speed-ups
    are against the reference at the same thread count, and memory is measured
    in the first run only (peak RSS barely depends on the threads).

    threads (Sequence[int]): The thread counts, e.g. [1, 2].
    RETURNS (Dict[str, Any]): The results, as `benchmark_pipelines`'s, with
        "threads" in each model entry and the list in settings and environment.
    """
    threads = list(dict.fromkeys(threads))
    if not threads or any(n < 1 for n in threads):
        raise ValueError(f"thread counts must be positive, got {threads}")
    merged: Optional[Dict[str, Any]] = None
    for i, n in enumerate(threads):
        log(f"Benchmarking with {n} thread{'s' if n != 1 else ''}")
        run = benchmark_pipelines(
            models, data_path, replace(settings, threads=n, memory=settings.memory and i == 0), log=log
        )
        for entry in run["models"]:
            entry["threads"] = n
            if len(threads) > 1:
                entry["name"] = f"{entry['name']} ({n}t)"
        if merged is None:
            merged = run
        else:
            merged["models"].extend(run["models"])
    assert merged is not None
    merged["settings"]["threads"] = threads
    merged["environment"]["torch_threads"] = threads
    if len(threads) > 1:
        merged["settings"]["reference"] = f"{merged['settings']['reference']}, same threads"
    return merged
