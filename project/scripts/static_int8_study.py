"""Why ONNX Runtime's static int8 loses F, and what keeps it: dev F of a trained
pipeline's packed static int8 export (min/max calibration) with 7-bit weights,
another smoothing strength, or the feed-forward output layers left in fp32,
beside the fp32 pipeline. F only: speed belongs to `cpu_class_benchmark.sh`.

    python project/scripts/static_int8_study.py training/NCBI-disease/student/model-best \\
        corpus/NCBI-disease/train.spacy corpus/NCBI-disease/dev.spacy --output results/int8-static-study.json
"""

import json
import time
from pathlib import Path
from typing import Any, Dict, Optional

import typer
from wasabi import msg

from spacy_fastbioner.runtime.onnx_model import FFN_OUTPUT_LAYERS

# name -> keyword arguments of export_pipeline
VARIANTS: Dict[str, Dict[str, Any]] = {
    "min/max (export's default)": {},
    "min/max, 7-bit weights": {"reduce_range": True},
    "min/max, feed-forward output layers fp32": {"fp32_layers": FFN_OUTPUT_LAYERS},
    "min/max, 7-bit weights, feed-forward output layers fp32": {"reduce_range": True, "fp32_layers": FFN_OUTPUT_LAYERS},
    "min/max, smoothing alpha 0.5": {"smooth_alpha": 0.5},
}


def main(
    model: Path = typer.Argument(..., exists=True, file_okay=False, help="Trained fp32 pipeline"),
    calibration: Path = typer.Argument(..., exists=True, dir_okay=False, help="Training docs (.spacy)"),
    dev: Path = typer.Argument(..., exists=True, dir_okay=False, help="Gold dev docs (.spacy)"),
    n_calibration: int = typer.Option(512, "--n-calibration"),
    only: Optional[str] = typer.Option(None, "--only", help="Comma-separated variant names (default: all)"),
    output: Optional[Path] = typer.Option(None, "--output"),
) -> None:
    import torch

    from spacy_fastbioner.benchmark.data import load_gold_docs
    from spacy_fastbioner.loading import load_pipeline
    from spacy_fastbioner.runtime import export_pipeline
    from spacy_fastbioner.runtime.auto import dev_f
    from spacy_fastbioner.runtime.cpu import read_cpu_flags, this_cpu_class

    torch.set_num_threads(1)
    nlp = load_pipeline(model)
    train = load_gold_docs(calibration, nlp.vocab)[:n_calibration]
    gold = load_gold_docs(dev, nlp.vocab)
    rows = [{"variant": "fp32 (PyTorch)", "f": dev_f(nlp, gold)}]
    msg.info(f"fp32 (PyTorch): dev F {rows[0]['f']:.2f}")
    wanted = set(only.split(",")) if only else set(VARIANTS)
    for name, settings in VARIANTS.items():
        if name not in wanted:
            continue
        start = time.perf_counter()
        exported = export_pipeline(
            nlp, runtime="onnx", int8=True, int8_scheme="static", packed=True, calibration=train, **settings
        )
        f = dev_f(exported, gold)
        rows.append({"variant": name, "f": f, "export_s": round(time.perf_counter() - start, 1)})
        msg.info(f"{name}: dev F {f:.2f} ({f - rows[0]['f']:+.2f})")
    result = {
        "command": "python project/scripts/static_int8_study.py "
        + " ".join(map(str, [model, calibration, dev]))
        + f" --n-calibration {n_calibration}",
        "cpu_class": this_cpu_class(),
        "flags": sorted(f for f in (read_cpu_flags() or ()) if "avx" in f or "vnni" in f or "amx" in f),
        "dev_docs": len(gold),
        "rows": rows,
    }
    if output:
        output.parent.mkdir(parents=True, exist_ok=True)
        output.write_text(json.dumps(result, indent=2) + "\n", encoding="utf8")


if __name__ == "__main__":
    typer.run(main)
