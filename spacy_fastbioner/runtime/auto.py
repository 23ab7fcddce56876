"""`export --runtime auto`: export the candidate forms for this CPU's class,
time each on a short sample, score each on a dev set when one is given, and
keep the fastest batch-invariant form within `MAX_F_DROP` of the fp32
student (choice.py). The choice and its figures go into the exported
pipeline's meta (`meta["fastbioner"]["runtime_choice"]`) and into its
transformer's stored data, which `spacy.load` checks against the CPU it runs on.
"""

import importlib.util
import time
from typing import Any, Callable, Dict, Iterable, List, Optional, Sequence, Tuple, cast

from spacy.language import Language
from spacy.tokens import Doc
from spacy.training import Example

from ..encoder.transformer import find_transformer
from .choice import MAX_F_DROP, Form, candidate_forms, choose_form
from .cpu import cpu_class, read_cpu_flags
from .export import N_CALIBRATION, export_pipeline
from .smoothing import DEFAULT_ALPHA

# Calibration docs timed per candidate: seconds, not minutes, for a student.
N_TIMING_DOCS = 48
# The packages each runtime's export needs (choice.py forms name the runtime).
EXPORT_PACKAGES = {"onnx": ("onnx", "onnxruntime"), "openvino": ("onnx", "openvino", "nncf")}


def installed_runtimes() -> List[str]:
    """RETURNS (List[str]): The runtimes whose export packages are all installed."""
    return [
        runtime
        for runtime, packages in EXPORT_PACKAGES.items()
        if all(importlib.util.find_spec(name) is not None for name in packages)
    ]


def _fresh_docs(nlp: Language, docs: Sequence[Doc]) -> List[Doc]:
    """Unannotated copies of the docs' words, for the pipeline to annotate."""
    return [Doc(nlp.vocab, words=[t.text for t in d], spaces=[bool(t.whitespace_) for t in d]) for d in docs]


def time_pipeline(nlp: Language, docs: Sequence[Doc], *, passes: int = 2) -> float:
    """Words per second of a pipeline on some docs: `passes` runs over them,
    the last one timed (the first compiles kernels and fills caches).

    nlp (Language): The pipeline.
    docs (Sequence[Doc]): The docs whose words to annotate.
    passes (int): Runs over the docs, at least 1.
    RETURNS (float): Words per second of the last pass.
    """
    if passes < 1:
        raise ValueError(f"passes must be at least 1, got {passes}")
    seconds = 0.0
    for _ in range(passes):
        fresh = _fresh_docs(nlp, docs)
        start = time.perf_counter()
        for _doc in nlp.pipe(fresh):
            pass
        seconds = time.perf_counter() - start
    words = sum(len(doc) for doc in docs)
    return words / max(seconds, 1e-9)


def dev_f(nlp: Language, gold: Sequence[Doc]) -> float:
    """RETURNS (float): The pipeline's entity F (percent) on gold docs."""
    examples = [Example(doc, ref) for doc, ref in zip(_fresh_docs(nlp, gold), gold)]
    return 100.0 * float(nlp.evaluate(examples)["ents_f"] or 0.0)


def export_form(
    nlp: Language,
    form: Form,
    calibration: Sequence[Doc],
    **settings: Any,
) -> Language:
    """Export a pipeline in one form of choice.py.

    nlp (Language): The trained fp32 pipeline.
    form (Form): The runtime, int8 scheme and batch layout.
    calibration (Sequence[Doc]): Training docs; the first `N_CALIBRATION`
        of the runtime calibrate its int8 (none used for fp32).
    **settings: Further keyword arguments of `export_pipeline`.
    RETURNS (Language): The exported pipeline.
    """
    docs = list(calibration[: N_CALIBRATION[form.runtime]]) if form.int8 else None
    return export_pipeline(
        nlp,
        runtime=form.runtime,
        int8=form.int8 is not None,
        int8_scheme=form.int8,
        packed=form.packed,
        calibration=docs,
        reduce_range=form.reduce_range,
        fp32_layers=form.fp32_layers,
        **settings,
    )


def export_auto(
    nlp: Language,
    *,
    calibration: Sequence[Doc],
    dev: Optional[Sequence[Doc]] = None,
    flags: Optional[Iterable[str]] = None,
    n_timing: int = N_TIMING_DOCS,
    max_f_drop: float = MAX_F_DROP,
    per_channel: bool = True,
    smooth_alpha: float = DEFAULT_ALPHA,
    max_batch_items: Optional[int] = None,
    forms: Optional[Sequence[Form]] = None,
    log: Optional[Callable[[str], None]] = None,
) -> Tuple[Language, Dict[str, Any]]:
    """Export the fastest batch-invariant form of a pipeline for this CPU.

    nlp (Language): A trained fp32 pipeline (`TransformerModel.v3`).
    calibration (Sequence[Doc]): Training docs: int8 calibration, and the
        first `n_timing` of them time the candidates.
    dev (Optional[Sequence[Doc]]): Gold docs to score each candidate and the
        fp32 pipeline on; without them the choice is by speed alone.
    flags (Optional[Iterable[str]]): The CPU's flags; this machine's when None.
    n_timing (int): Calibration docs to time each candidate on (two passes,
        the second timed).
    max_f_drop (float): The largest dev F loss against fp32 allowed, in points.
    per_channel (bool): ONNX Runtime: int8 weight scales per output channel.
    smooth_alpha (float): ONNX Runtime: the smoothing's migration strength.
    max_batch_items (Optional[int]): As in `export_pipeline`.
    forms (Optional[Sequence[Form]]): The candidates; those of the CPU's class
        whose runtimes are installed when None.
    log (Optional[Callable[[str], None]]): Called with a line per candidate.
    RETURNS (Tuple[Language, Dict[str, Any]]): The chosen exported pipeline
        and the choice (also in its meta["fastbioner"]["runtime_choice"]).
    """
    if not calibration:
        raise ValueError("export --runtime auto needs training docs (--calibration TRAIN): int8 calibration and timing")
    if n_timing < 1:
        raise ValueError(f"n_timing must be at least 1, got {n_timing}")
    flags = read_cpu_flags() if flags is None else frozenset(flags)
    candidates = list(forms) if forms is not None else candidate_forms(cpu_class(flags), installed_runtimes())
    if not candidates:
        raise ValueError(
            f"no runtime to export to: install one of {sorted(EXPORT_PACKAGES)} (pip install 'spacy-fastbioner[onnx]')"
        )
    sample = list(calibration[:n_timing])
    fp32_f = dev_f(nlp, dev) if dev else None
    info: Dict[str, Any] = {
        "docs": len(sample),
        "words": sum(len(doc) for doc in sample),
        "passes": 2,
        "pytorch_fp32_words_per_second": round(time_pipeline(nlp, sample), 1),
        "dev_docs": len(dev) if dev else 0,
    }
    settings = {"per_channel": per_channel, "smooth_alpha": smooth_alpha, "max_batch_items": max_batch_items}
    exported: Dict[str, Language] = {}
    measured: List[Dict[str, Any]] = []
    for form in candidates:
        exported[form.name] = export_form(nlp, form, calibration, **settings)
        speed = time_pipeline(exported[form.name], sample)
        f = dev_f(exported[form.name], dev) if dev else None
        measured.append({"form": form.name, "words_per_second": speed, "f": f})
        if log is not None:
            log(f"{form.title}: {speed:,.0f} words/s" + (f", dev F {f:.2f}" if f is not None else ""))
    choice = choose_form(measured, fp32_f=fp32_f, flags=flags, max_f_drop=max_f_drop, sample=info)
    chosen = exported[choice["form"]]
    record_runtime_choice(chosen, choice)
    return chosen, choice


def record_runtime_choice(nlp: Language, choice: Dict[str, Any]) -> None:
    """Write a choice into an exported pipeline: its meta, and its
    transformer's stored data (read back by `spacy.load`, which warns on a CPU
    where the form is known to be slow).

    nlp (Language): An exported pipeline.
    choice (Dict[str, Any]): What `choose_form` returned.
    """
    meta = dict(nlp.meta.get("fastbioner") or {})
    meta["runtime_choice"] = choice
    nlp.meta["fastbioner"] = meta
    shim = cast(Any, find_transformer(nlp).model.layers[0].shims[0])
    shim.runtime_choice = choice
