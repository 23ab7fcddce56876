"""`export --runtime auto`: the forms worth trying on each CPU class, the
choice among them from figures measured on this machine, and the warning
when a pipeline is loaded on a CPU where its form is known to be slow.

A form is a runtime, an int8 scheme and a batch layout. Only batch-invariant
forms are chosen: fp32, or int8 with static activation scales (calibrated
once at export). ONNX Runtime's dynamic int8 computes its activation scales
per call, from the whole padded batch, so a document's entities depend on
its neighbours (issue 25: NCBI test F 82.72 in one batch order, 81.98
through `annotate`); it stays available by name, never by `auto`.

Everything here is a pure function of flags and figures, so that tests can
simulate any CPU and any timings.
"""

import logging
from dataclasses import asdict, dataclass
from typing import Any, Dict, Iterable, List, Optional, Sequence, Tuple

from .cpu import ARM_DOTPROD, AVX2, AVX512_VNNI, OTHER, cpu_class, recorded_flags
from .onnx_model import FFN_OUTPUT_LAYERS

logger = logging.getLogger("spacy_fastbioner")

# How far below the fp32 student's dev F a chosen form may score.
MAX_F_DROP = 0.3


@dataclass(frozen=True)
class Form:
    """One way to run the exported transformer.

    name (str): The form's name in meta.json and messages.
    runtime (str): "onnx" or "openvino".
    int8 (Optional[str]): "static", "dynamic", or None for fp32.
    packed (bool): Whether the graph takes packed batches (packing.py).
    reduce_range (bool): ONNX Runtime int8 with 7-bit weights, which cannot
        saturate the 16-bit sums of int8 kernels without VNNI.
    fp32_layers (Tuple[str, ...]): ONNX Runtime static int8: node-name
        patterns of the layers kept in fp32.
    """

    name: str
    runtime: str
    int8: Optional[str]
    packed: bool
    reduce_range: bool = False
    fp32_layers: Tuple[str, ...] = ()

    @property
    def batch_invariant(self) -> bool:
        """Whether a document's output is the same in any batch: not so for
        dynamic int8, whose activation scales are measured per call."""
        return self.int8 != "dynamic"

    @property
    def title(self) -> str:
        runtime = {"onnx": "ONNX Runtime", "openvino": "OpenVINO"}[self.runtime]
        precision = f"{self.int8} int8" if self.int8 else "fp32"
        if self.reduce_range:
            precision += " (7-bit weights)"
        if self.fp32_layers:
            precision += " (feed-forward outputs fp32)"
        return f"{runtime} {precision}, {'packed' if self.packed else 'padded'}"


FORMS = {
    form.name: form
    for form in (
        Form("onnx-static-int8-packed", "onnx", "static", True),
        Form("onnx-static-int8-7bit-packed", "onnx", "static", True, reduce_range=True),
        Form("onnx-static-int8-ffn-fp32-packed", "onnx", "static", True, fp32_layers=FFN_OUTPUT_LAYERS),
        Form("onnx-static-int8-padded", "onnx", "static", False),
        Form("onnx-dynamic-int8-padded", "onnx", "dynamic", False),
        Form("onnx-fp32-padded", "onnx", None, False),
        Form("openvino-static-int8-packed", "openvino", "static", True),
        Form("openvino-fp32-packed", "openvino", None, True),
    )
}

# The forms `auto` exports and times, by CPU class, the likely fastest first.
# Each list ends with an fp32 form, so that one candidate always keeps the
# fp32 student's F. With VNNI, OpenVINO's static int8 (int8 attention as well
# as Linear layers) ran at 7.3-7.6x the teacher; on AVX2 alone ONNX Runtime's
# int8 led and OpenVINO's static int8 was the slowest int8 form (issue 25).
# Without VNNI, the 7-bit-weight form is tried beside the 8-bit one: their
# kernels add pairs of uint8 x int8 products in 16 bits, which 8-bit weights
# can saturate. Where ONNX Runtime's int8 leads, so is the form with the
# feed-forward output layers in fp32, which lost far less F in a study
# (results/int8-static-study.json).
CANDIDATES: Dict[str, Sequence[str]] = {
    AVX512_VNNI: ("openvino-static-int8-packed", "onnx-static-int8-packed", "openvino-fp32-packed"),
    AVX2: (
        "onnx-static-int8-packed",
        "onnx-static-int8-ffn-fp32-packed",
        "onnx-static-int8-7bit-packed",
        "onnx-static-int8-padded",
        "openvino-static-int8-packed",
        "openvino-fp32-packed",
    ),
    ARM_DOTPROD: (
        "onnx-static-int8-packed",
        "onnx-static-int8-ffn-fp32-packed",
        "openvino-static-int8-packed",
        "onnx-fp32-padded",
    ),
    OTHER: (
        "onnx-static-int8-packed",
        "onnx-static-int8-ffn-fp32-packed",
        "onnx-static-int8-7bit-packed",
        "onnx-fp32-padded",
    ),
}

# Forms measured slow on a CPU class, with the form to use there instead and
# what showed it (one benchmark run, NCBI test, one thread).
KNOWN_SLOW: Dict[str, Dict[str, Dict[str, str]]] = {
    AVX2: {
        "openvino-static-int8-packed": {
            "better": "onnx-static-int8-packed",
            "evidence": "AMD EPYC, AVX2 without VNNI: OpenVINO static int8 packed 2.11x the teacher, "
            "ONNX Runtime int8 packed 3.55x (issue 25)",
        },
    },
}
KNOWN_SLOW[OTHER] = KNOWN_SLOW[AVX2]


def candidate_forms(cpu: str, runtimes: Optional[Iterable[str]] = None) -> List[Form]:
    """The forms to export and time on a CPU class.

    cpu (str): The CPU class (cpu.py: `cpu_class`).
    runtimes (Optional[Iterable[str]]): The runtimes installed; all when None.
    RETURNS (List[Form]): The candidates, the likely fastest first.
    """
    if cpu not in CANDIDATES:
        raise ValueError(f"unknown CPU class {cpu!r}: expected one of {tuple(CANDIDATES)}")
    allowed = None if runtimes is None else set(runtimes)
    return [FORMS[name] for name in CANDIDATES[cpu] if allowed is None or FORMS[name].runtime in allowed]


def choose_form(
    measured: Sequence[Dict[str, Any]],
    *,
    fp32_f: Optional[float],
    flags: Optional[Iterable[str]],
    max_f_drop: float = MAX_F_DROP,
    sample: Optional[Dict[str, Any]] = None,
) -> Dict[str, Any]:
    """Keep the fastest batch-invariant form whose dev F is at most
    `max_f_drop` below the fp32 student's, and say why.

    measured (Sequence[Dict[str, Any]]): One dict per candidate timed on this
        machine: "form" (a name of `FORMS`), "words_per_second" and "f" (dev
        F in percent, or None without a dev set).
    fp32_f (Optional[float]): The fp32 PyTorch student's dev F; None without a
        dev set, when the forms are ranked by speed alone.
    flags (Optional[Iterable[str]]): The CPU's flags (recorded with the choice).
    max_f_drop (float): The largest F loss allowed, in points.
    sample (Optional[Dict[str, Any]]): What the timings ran on (e.g. docs, words, passes).
    RETURNS (Dict[str, Any]): The choice for meta["fastbioner"]["runtime_choice"]:
        form, its runtime, int8 and packed, cpu_class, flags, fp32_f,
        max_f_drop, each candidate's figures with "kept" and "why", and reason.
    """
    rows: List[Dict[str, Any]] = []
    for entry in measured:
        name = entry.get("form")
        if name not in FORMS:
            raise ValueError(f"unknown form {name!r} among the measured candidates: expected one of {tuple(FORMS)}")
        form = FORMS[name]
        speed, f = float(entry["words_per_second"]), entry.get("f")
        row = {"form": name, "words_per_second": round(speed, 1), "f": f}
        if not form.batch_invariant:
            row.update(kept=False, why="not batch-invariant (activation scales per call)")
        elif fp32_f is not None and f is None:
            row.update(kept=False, why="no dev F measured")
        elif fp32_f is not None and f is not None and f < fp32_f - max_f_drop:
            row.update(kept=False, why=f"dev F {f:.2f} is more than {max_f_drop} below fp32 {fp32_f:.2f}")
        else:
            row.update(kept=True, why="")
        rows.append(row)
    kept = [row for row in rows if row["kept"]]
    if not kept:
        found = "; ".join(f"{row['form']}: {row['why']}" for row in rows) or "no candidates"
        raise ValueError(f"no batch-invariant form within {max_f_drop} F of the fp32 student: {found}")
    best = max(kept, key=lambda row: row["words_per_second"])
    form = FORMS[best["form"]]
    accuracy = f"dev F {best['f']:.2f}, fp32 {fp32_f:.2f}" if fp32_f is not None else "no dev set: accuracy not checked"
    reason = (
        f"fastest batch-invariant form of {len(rows)} timed on this {cpu_class(flags)} CPU: "
        f"{best['words_per_second']:,.0f} words/s ({accuracy})"
    )
    return {
        **asdict(form),
        "form": form.name,
        "cpu_class": cpu_class(flags),
        "flags": recorded_flags(flags),
        "fp32_f": fp32_f,
        "max_f_drop": max_f_drop,
        "sample": dict(sample or {}),
        "candidates": rows,
        "reason": reason,
    }


def slow_form_warning(choice: Dict[str, Any], flags: Optional[Iterable[str]]) -> Optional[str]:
    """The warning for loading a pipeline on a CPU where its chosen form is
    known to be slow, or None.

    choice (Dict[str, Any]): The pipeline's recorded choice (`choose_form`).
    flags (Optional[Iterable[str]]): The flags of the CPU it is loaded on.
    RETURNS (Optional[str]): The message, naming the better form and the
        figures the form was chosen on.
    """
    here = cpu_class(flags)
    name = choice.get("form")
    slow = KNOWN_SLOW.get(here, {}).get(str(name))
    if slow is None or choice.get("cpu_class") == here:
        return None
    better = FORMS[slow["better"]]
    rows: List[Dict[str, Any]] = list(choice.get("candidates") or [])
    mine: Dict[str, Any] = next((row for row in rows if row.get("form") == name), {})
    figures = f"{mine.get('words_per_second', 0):,.0f} words/s" if mine else "no figures recorded"
    if mine.get("f") is not None:
        figures += f", dev F {mine['f']:.2f}"
    return (
        f"this pipeline's transformer is {FORMS[str(name)].title}, chosen on a {choice.get('cpu_class')} CPU "
        f"({figures}). This CPU is {here}, where that form is known to be slow ({slow['evidence']}): "
        f"{better.title} is faster here. Export the fp32 pipeline again on this machine with "
        "`spacy fastbioner export MODEL OUTPUT --runtime auto --calibration TRAIN`."
    )


def warn_if_slow(choice: Optional[Dict[str, Any]], flags: Optional[Iterable[str]]) -> None:
    """Log `slow_form_warning` at WARNING level, if there is one.

    choice (Optional[Dict[str, Any]]): The recorded choice, or None (nothing to check).
    flags (Optional[Iterable[str]]): The flags of the CPU the pipeline is loaded on.
    """
    message = slow_form_warning(choice, flags) if choice else None
    if message:
        logger.warning(message)
