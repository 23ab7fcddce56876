"""Compare the int8 options of a trained pipeline on a test set: F and the
raw transformer forward speed of PyTorch fp32 and int8, and of ONNX Runtime
fp32, dynamic int8 (per channel, per matrix) and static int8 calibrated on
training sentences. It decides the defaults of `quantize` and `export`.

    python project/scripts/int8_study.py training/NCBI-disease/student/model-best \
        corpus/NCBI-disease/test.spacy corpus/NCBI-disease/train.spacy --output metrics/NCBI-disease/int8-study.json
"""

import time
from pathlib import Path
from typing import Optional

import typer
from wasabi import msg


def main(
    # fmt: off
    model: Path = typer.Argument(..., help="Trained fp32 pipeline", exists=True, file_okay=False),
    test: Path = typer.Argument(..., help="Test docs (.spacy or IOB .tsv)", exists=True, dir_okay=False),
    train: Path = typer.Argument(
        ..., help="Training docs for the static calibration (.spacy or IOB .tsv)", exists=True, dir_okay=False
    ),
    n_calibration: int = typer.Option(512, "--n-calibration", help="Training sentences for the calibration"),
    threads: int = typer.Option(1, "--threads", help="torch / ONNX Runtime threads"),
    output: Optional[Path] = typer.Option(None, "--output", help="JSON with the figures"),
    # fmt: on
) -> None:
    import srsly
    import torch

    from spacy_fastbioner.benchmark.data import load_gold_docs
    from spacy_fastbioner.benchmark.runner import score
    from spacy_fastbioner.benchmark.speed import time_raw_forward
    from spacy_fastbioner.encoder.inputs import encoder_inputs
    from spacy_fastbioner.encoder.transformer import find_transformer, hf_model
    from spacy_fastbioner.loading import load_pipeline
    from spacy_fastbioner.runtime import OnnxTransformer, export_pipeline
    from spacy_fastbioner.runtime.onnx_model import quantize_onnx_static
    from spacy_fastbioner.runtime.quantize import quantize_pipeline

    torch.set_num_threads(threads)
    nlp = load_pipeline(model)
    variants = {
        "pytorch fp32": nlp,
        "pytorch int8 (dynamic, per channel)": quantize_pipeline(nlp),
        "onnx fp32": export_pipeline(nlp, int8=False),
        "onnx int8 (dynamic, per channel)": export_pipeline(nlp, int8=True),
        "onnx int8 (dynamic, per matrix)": export_pipeline(nlp, int8=True, per_channel=False),
    }
    static = export_pipeline(nlp, int8=False)
    trf = find_transformer(static)
    calibration_docs = load_gold_docs(train, static.vocab)[:n_calibration]
    calibration = [{k: v.numpy() for k, v in b.items()} for b in encoder_inputs(static, calibration_docs)]
    fp32 = hf_model(trf)
    trf.model.layers[0].shims[0]._hfmodel.transformer = OnnxTransformer(
        quantize_onnx_static(fp32.model_bytes, calibration), fp32.config
    )
    variants["onnx int8 (static, min/max calibration)"] = static
    results = {}
    for name, pipeline in variants.items():
        gold = load_gold_docs(test, pipeline.vocab)
        accuracy, _ = score(pipeline, gold, 64)
        ptrf = find_transformer(pipeline)
        ptrf.cfg["max_batch_items"] = 512
        batches = encoder_inputs(pipeline, gold)
        time_raw_forward(hf_model(ptrf), batches[:2])  # warm-up
        start = time.perf_counter()
        seconds = time_raw_forward(hf_model(ptrf), batches)
        words = sum(len(doc) for doc in gold)
        results[name] = {
            "f": accuracy["f"],
            "p": accuracy["p"],
            "r": accuracy["r"],
            "raw_forward_words_per_sec": words / seconds,
        }
        msg.text(
            f"{name}: F {100 * accuracy['f']:.2f}, raw forward {words / seconds:,.0f} words/s "
            f"({time.perf_counter() - start:.0f} s)"
        )
    if output is not None:
        output.parent.mkdir(parents=True, exist_ok=True)
        srsly.write_json(output, {"model": str(model), "test": str(test), "threads": threads, "results": results})
        msg.good(f"Wrote {output}")


if __name__ == "__main__":
    typer.run(main)
