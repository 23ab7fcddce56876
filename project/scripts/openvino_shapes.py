"""Speed of an OpenVINO student's encoder on input shapes that it meets for
the first time and again, under CPU plugin settings: the study behind
`openvino_model.compile_properties` (snippets stay on).

Each setting compiles the model in a fresh process and times it on the wordpiece
sub-batches of the benchmark's batches (64 docs, `--max-batch-items`): the
first `--batches` batches, the next as many, and those again
(`benchmark.shapes.time_shape_passes`); settings alternate for `--rounds`.

    python project/scripts/openvino_shapes.py training/NCBI-disease/student-openvino-int8 \
        corpus/NCBI-disease/test.spacy --output benchmarks/openvino-shapes.json
"""

import json
import multiprocessing
from functools import partial
from pathlib import Path
from typing import Any, Dict, List

import numpy
import typer
from wasabi import msg

# Each setting: CPU plugin properties over compile_model's.
SETTINGS: Dict[str, Dict[str, Any]] = {
    "default": {},
    "snippets-off": {"SNIPPETS_MODE": "DISABLE"},
}


def _infer(request: Any, input_names: List[str], kwargs: Dict[str, Any]) -> Any:
    return request.infer({n: kwargs[n] for n in input_names}, share_inputs=True, share_outputs=False)


def time_setting(model: str, data: str, setting: str, batches: int, max_batch_items: int) -> Dict[str, Any]:
    """One setting timed in this process (`time_shape_passes`)."""
    from spacy_fastbioner.benchmark.data import load_gold_docs
    from spacy_fastbioner.benchmark.shapes import time_shape_passes
    from spacy_fastbioner.benchmark.speed import make_batches
    from spacy_fastbioner.encoder.inputs import encoder_inputs
    from spacy_fastbioner.encoder.transformer import find_transformer, hf_model
    from spacy_fastbioner.loading import load_pipeline
    from spacy_fastbioner.runtime.base import as_int64
    from spacy_fastbioner.runtime.openvino_model import compile_model
    from spacy_fastbioner.util.threads import set_threads

    set_threads(1)
    nlp = load_pipeline(model)
    trf = find_transformer(nlp)
    trf.cfg["max_batch_items"] = max_batch_items
    encoder = hf_model(trf)
    gold = load_gold_docs(Path(data), nlp.vocab)
    docs_of = make_batches(len(gold), 64, 2 * batches, seed=0)
    inputs = [
        [{k: as_int64(v) for k, v in kwargs.items()} for kwargs in encoder_inputs(nlp, [gold[i] for i in batch])]
        for batch in docs_of
    ]
    words = [sum(len(gold[i]) for batch in part for i in batch) for part in (docs_of[:batches], docs_of[batches:])]
    request = compile_model(encoder._model, threads=1, properties=SETTINGS[setting]).create_infer_request()
    forward = partial(_infer, request, encoder.input_names)
    return time_shape_passes(forward, inputs[:batches], inputs[batches:], words)


def main(
    # fmt: off
    model: Path = typer.Argument(..., help="An OpenVINO pipeline (spacy fastbioner export --runtime openvino)"),
    data: Path = typer.Argument(..., help="Gold docs (.spacy)"),
    output: Path = typer.Option(..., "--output", help="JSON file of the results"),
    settings: str = typer.Option(",".join(SETTINGS), "--settings", help="Comma-separated names of SETTINGS"),
    batches: int = typer.Option(23, "--batches", help="Batches per pass"),
    rounds: int = typer.Option(2, "--rounds", help="Times each setting is timed, alternating"),
    max_batch_items: int = typer.Option(512, "--max-batch-items", help="Padded spaCy tokens per sub-batch"),
    # fmt: on
) -> None:
    names = settings.split(",")
    results: Dict[str, List[Dict[str, Any]]] = {name: [] for name in names}
    # A fresh process per run: OpenVINO's kernels are cached process-wide,
    # so a model compiled after another would find some of its kernels made.
    context = multiprocessing.get_context("spawn")
    for round_ in range(rounds):
        for name in names:
            with context.Pool(1) as pool:
                run = pool.apply(time_setting, (str(model), str(data), name, batches, max_batch_items))
            results[name].append(run)
            speed = run["words_per_sec"]
            msg.text(f"round {round_ + 1} {name}: " + ", ".join(f"{k} {v:,.0f}" for k, v in speed.items()))
    summary = {
        name: {key: float(numpy.median([r["words_per_sec"][key] for r in runs])) for key in runs[0]["words_per_sec"]}
        for name, runs in results.items()
    }
    rows = [(name, *[f"{summary[name][k]:,.0f}" for k in ("first", "later", "repeated")]) for name in names]
    msg.table(rows, header=("setting", "first shapes", "later", "repeated"), divider=True)
    output.parent.mkdir(parents=True, exist_ok=True)
    shapes = results[names[0]][0]["shapes"]
    meta = {"model": str(model), "data": str(data), "batches": batches, "max_batch_items": max_batch_items}
    output.write_text(json.dumps({**meta, "shapes": shapes, "runs": results, "median": summary}, indent=2))
    msg.good(f"Wrote {output}")


if __name__ == "__main__":
    typer.run(main)
