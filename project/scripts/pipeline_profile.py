"""Where a pipeline's time goes beside the transformer's forward pass: wall
seconds of each step of `nlp.pipe` over a test set, by timers wrapped around
the transformer's runtime call, the tokenizer, the alignment, the per-doc
split, the sentence splitter and the NER head, against the raw forward pass
on the same batches. An untimed pass over the same batches comes first, so
that a runtime that compiles kernels per input shape (OpenVINO) has seen
every shape in both timings: this measures the spaCy side, not the cost of
new shapes (`openvino_shapes.py` measures that).

    python project/scripts/pipeline_profile.py training/NCBI-disease/student-onnx-int8 \
        corpus/NCBI-disease/test.spacy --max-batch-items 512 --threads 1
"""

import functools
import time
from collections import Counter
from pathlib import Path
from typing import Any, Callable, Optional

import typer
from wasabi import msg


def _timed(owner: Any, name: str, label: str, totals: Counter) -> None:
    function: Callable = getattr(owner, name)

    @functools.wraps(function)
    def timed(*args: Any, **kwargs: Any) -> Any:
        start = time.perf_counter()
        try:
            return function(*args, **kwargs)
        finally:
            totals[label] += time.perf_counter() - start

    setattr(owner, name, timed)


def main(
    # fmt: off
    model: Path = typer.Argument(
        ..., help="Pipeline folder (PyTorch, ONNX Runtime or OpenVINO)", exists=True, file_okay=False
    ),
    data: Path = typer.Argument(..., help="Gold docs (.spacy or IOB .tsv)", exists=True, dir_okay=False),
    max_batch_items: Optional[int] = typer.Option(None, "--max-batch-items", help="Set the transformer's"),
    threads: int = typer.Option(1, "--threads", help="torch / ONNX Runtime threads"),
    batch_size: int = typer.Option(64, "--batch-size", help="Docs per batch of nlp.pipe"),
    # fmt: on
) -> None:
    from spacy_transformers.pipeline_component import Transformer

    import spacy_fastbioner.runtime.fast_forward as fast_forward
    from spacy_fastbioner.benchmark.data import load_gold_docs
    from spacy_fastbioner.benchmark.speed import time_raw_forward
    from spacy_fastbioner.encoder.inputs import encoder_inputs, fresh_docs
    from spacy_fastbioner.encoder.transformer import find_transformer, hf_model
    from spacy_fastbioner.loading import load_pipeline
    from spacy_fastbioner.pipeline.ner import FastBioNER
    from spacy_fastbioner.pipeline.sentences import SentenceSplitter
    from spacy_fastbioner.runtime.architecture import is_runtime_transformer
    from spacy_fastbioner.util.threads import set_threads

    set_threads(threads)
    nlp = load_pipeline(model)
    trf = find_transformer(nlp)
    if max_batch_items:
        trf.cfg["max_batch_items"] = max_batch_items
    gold = load_gold_docs(data, nlp.vocab)
    list(nlp.pipe(fresh_docs(nlp, gold), batch_size=batch_size))  # every batch once, untimed
    raw = 0.0
    for i in range(0, len(gold), batch_size):  # the pipeline's own sub-batches, outside the timers
        raw += time_raw_forward(hf_model(trf), encoder_inputs(nlp, gold[i : i + batch_size]))
    totals: Counter = Counter()
    transformer = hf_model(trf)
    in_runtime = is_runtime_transformer(transformer)
    # The instance's forward, not Module.__call__: that would time every submodule too.
    _timed(
        type(transformer) if in_runtime else transformer,
        "__call__" if in_runtime else "forward",
        "transformer runtime",
        totals,
    )
    for name in ("tokenize_texts", "get_alignment_fast", "split_by_doc"):
        _timed(fast_forward, name, name, totals)
    _timed(Transformer, "set_annotations", "transformer set_annotations", totals)
    _timed(FastBioNER, "predict", "NER predict", totals)
    _timed(FastBioNER, "set_annotations", "NER decoding", totals)
    _timed(SentenceSplitter, "__call__", "sentence splitter", totals)
    docs = fresh_docs(nlp, gold)
    start = time.perf_counter()
    list(nlp.pipe(docs, batch_size=batch_size))
    total = time.perf_counter() - start
    words = sum(len(doc) for doc in gold)
    msg.info(f"{len(gold)} docs, {words:,} words: pipeline {total:.3f} s, raw forward on the same batches {raw:.3f} s")
    msg.text(f"pipeline / raw forward: {raw / total:.1%}")
    rows = [(label, f"{seconds:.3f}", f"{seconds / total:.1%}") for label, seconds in totals.most_common()]
    msg.table(rows, header=("step", "seconds", "share"), divider=True)
    if not in_runtime:
        msg.warn("The timers see fast_forward.py's steps only with an ONNX Runtime or OpenVINO pipeline")


if __name__ == "__main__":
    typer.run(main)
