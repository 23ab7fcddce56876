"""The benchmark's outputs: JSON, a Markdown table and a speed/accuracy plot."""

from pathlib import Path
from typing import Any, Dict, List, Optional

import srsly

from .cpu import describe_cpu

JSON_NAME = "benchmark.json"
MARKDOWN_NAME = "benchmark.md"
PLOT_NAME = "benchmark.png"


def _num(value: Optional[float], fmt: str = ",.0f") -> str:
    return "–" if value is None else format(value, fmt)


def _interval(summary: Optional[Dict[str, Any]], fmt: str = ",.0f") -> str:
    if not summary or summary.get("median") is None:
        return "–"
    low, high = summary["ci95"]
    return f"{summary['median']:{fmt}} ({low:{fmt}}–{high:{fmt}})"


def markdown_table(results: Dict[str, Any]) -> str:
    """A Markdown table of the results, one row per model, with a note on
    the settings and methods underneath.

    results (Dict[str, Any]): The output of `benchmark_pipelines`.
    RETURNS (str): The Markdown text.
    """
    reference = results["settings"]["reference"]
    header = [
        "model",
        "runtime",
        "threads",
        "layers",
        "int8",
        "transformer params",
        "size MB",
        "F1",
        "P",
        "R",
        "words/s (95% CI)",
        f"× {reference}",
        "raw forward words/s",
        "pipeline / raw",
        "words/s, shapes seen",
        f"× {reference}, seen",
        "pipeline / raw, seen",
        "padding",
        "ms/doc p50",
        "ms/doc p95",
        "peak RSS Δ MB",
    ]
    rows: List[List[str]] = []
    for m in results["models"]:
        trf = m.get("transformer") or {}
        acc = m.get("accuracy") or {}
        speed = m["speed"]
        mem = m.get("memory") or {}
        vs_raw = speed.get("pipeline_vs_raw") or {}
        repeat = speed.get("repeat") or {}
        rows.append(
            [
                m["name"],
                _runtime(m),
                str(m.get("threads") or results["environment"]["torch_threads"]),
                str(trf.get("layers", "–")),
                "yes" if trf.get("quantized") else "no",
                _num(m["parameters"]["transformer"]) if m["parameters"]["transformer"] is not None else "–",
                _num(m.get("size_mb"), ".1f"),
                _num(acc.get("f"), ".4f"),
                _num(acc.get("p"), ".4f"),
                _num(acc.get("r"), ".4f"),
                _interval(speed["words_per_sec"]),
                _interval(speed["speedup_vs_reference"], ".2f"),
                _interval(speed.get("raw_forward_words_per_sec")),
                _num(vs_raw.get("median"), ".0%"),
                _interval(repeat.get("words_per_sec")),
                _interval(repeat.get("speedup_vs_reference"), ".2f"),
                _num((repeat.get("pipeline_vs_raw") or {}).get("median"), ".0%"),
                _num((speed.get("wordpieces") or {}).get("padding"), ".0%"),
                _num(speed["ms_per_doc"]["p50"], ".1f"),
                _num(speed["ms_per_doc"]["p95"], ".1f"),
                _num(mem.get("peak_delta_mb"), ",.0f"),
            ]
        )
    lines = [
        "| " + " | ".join(header) + " |",
        "|" + "|".join("---" for _ in header) + "|",
    ]
    lines.extend("| " + " | ".join(row) + " |" for row in rows)
    s, data, env = results["settings"], results["data"], results["environment"]
    lines += [
        "",
        f"{data['docs']} docs, {data['words']:,} words from `{data['path']}`; batches of "
        f"{s['batch_size']} docs, {s['n_batches']} timed batches per model after {s['warmup']} "
        f"warm-up batches, models alternating round-robin; {_threads(env)} "
        f"on {env['cpus']} CPUs ({env['machine']}), torch {env['torch']}, spaCy {env['spacy']}"
        + (f", ONNX Runtime {env['onnxruntime']}" if env.get("onnxruntime") else "")
        + (f", OpenVINO {env['openvino']}" if env.get("openvino") else "")
        + ".",
        f"CPU: {describe_cpu(env['cpu'])}." if env.get("cpu") else "CPU: not recorded.",
        _batch_items_note(results["models"]),
        "Words/s: median over batches (95% bootstrap interval of the median); × "
        f"{reference}: median of the per-batch ratios. Raw forward: the Hugging Face model alone "
        "on the same wordpiece batches (torch.inference_mode), in the model's own runtime, after the "
        "pipeline (the batch's shapes seen). Shapes seen: the same batches timed again after every "
        "model has annotated them once (a long job's steady state; OpenVINO compiles kernels per new "
        "input shape). ms/doc: one doc per call.",
        f"Peak RSS Δ: {results['methods']['memory']}.",
    ]
    return "\n".join(lines) + "\n"


def _batch_items_note(models: List[Dict[str, Any]]) -> str:
    """Each transformer's `max_batch_items` (its sub-batches per call), by value."""
    names: Dict[int, List[str]] = {}
    for model in models:
        items = (model.get("transformer") or {}).get("max_batch_items")
        if items and model["name"] not in names.setdefault(items, []):
            names[items].append(model["name"])
    if not names:
        return "Sub-batches: no transformer."
    if len(names) == 1:
        return f"Sub-batches (max_batch_items): {next(iter(names))} for every model."
    parts = [f"{items} for {', '.join(n)}" for items, n in sorted(names.items())]
    return f"Sub-batches (max_batch_items): {'; '.join(parts)}."


def _runtime(model: Dict[str, Any]) -> str:
    trf = model.get("transformer") or {}
    name = {"onnxruntime": "ONNX Runtime", "openvino": "OpenVINO", "pytorch": "PyTorch"}.get(
        trf.get("runtime") or "", "–"
    )
    if trf.get("packed"):
        name += ", packed"
    return f"{name} ({model['variant']})" if model.get("variant") else name


def _threads(env: Dict[str, Any]) -> str:
    threads = env["torch_threads"]
    if isinstance(threads, list):
        return f"{' and '.join(str(n) for n in threads)} threads, one run each"
    return f"{threads} thread{'s' if threads != 1 else ''}"


def plot(results: Dict[str, Any], path: Path) -> Path:
    """A speed/accuracy plot: F1 against words/sec (log scale) with the 95%
    intervals, the second pass (every shape seen) as a cross and each
    transformer's raw forward pass as a hollow marker on the same line.
    Without accuracy, a bar chart of words/sec.

    RETURNS (Path): The PNG file.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    models = results["models"]
    fig, ax = plt.subplots(figsize=(7.5, 4.8), dpi=120)
    with_accuracy = all(m.get("accuracy") for m in models)
    for i, m in enumerate(models):
        color = f"C{i % 10}"
        wps = m["speed"]["words_per_sec"]
        raw = m["speed"].get("raw_forward_words_per_sec")
        low, high = wps["ci95"]
        if with_accuracy:
            f1 = m["accuracy"]["f"]
            ax.errorbar(
                [wps["median"]],
                [f1],
                xerr=[[wps["median"] - low], [high - wps["median"]]],
                fmt="o",
                color=color,
                capsize=3,
                label=m["name"],
            )
            if raw and raw.get("median"):
                ax.plot([wps["median"], raw["median"]], [f1, f1], ":", color=color)
                ax.plot([raw["median"]], [f1], "o", mfc="none", color=color)
            seen = (m["speed"].get("repeat") or {}).get("words_per_sec") or {}
            if seen.get("median"):
                ax.plot([seen["median"]], [f1], "x", color=color)
            ax.annotate(m["name"], (wps["median"], f1), textcoords="offset points", xytext=(5, 5), fontsize=8)
        else:
            ax.bar(
                [i],
                [wps["median"]],
                yerr=[[wps["median"] - low], [high - wps["median"]]],
                color=color,
                capsize=3,
                label=m["name"],
            )
            if raw and raw.get("median"):
                ax.plot([i - 0.4, i + 0.4], [raw["median"]] * 2, "k--", lw=1)
    if with_accuracy:
        ax.set_xscale("log")
        ax.set_xlabel("words / second (×: every shape seen; hollow: raw transformer forward pass)")
        ax.set_ylabel("F1 (entities)")
    else:
        ax.set_xticks(range(len(models)), [m["name"] for m in models])
        ax.set_ylabel("words / second (dashed: raw transformer forward pass)")
    ax.set_title(
        f"Speed and accuracy on {Path(results['data']['path']).name} ({_threads(results['environment'])})", fontsize=10
    )
    ax.grid(True, which="both", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def write_report(results: Dict[str, Any], output_dir: Path) -> Dict[str, Path]:
    """Write the JSON, the Markdown table and the plot into a folder.

    RETURNS (Dict[str, Path]): The files, by kind (json, markdown, plot).
    """
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    files = {
        "json": output_dir / JSON_NAME,
        "markdown": output_dir / MARKDOWN_NAME,
        "plot": output_dir / PLOT_NAME,
    }
    srsly.write_json(files["json"], results)
    files["markdown"].write_text(markdown_table(results), encoding="utf8")
    plot(results, files["plot"])
    return files
