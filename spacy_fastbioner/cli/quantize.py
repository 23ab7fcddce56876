"""`spacy fastbioner quantize`: an int8 copy of a trained pipeline for CPU inference."""
from pathlib import Path
from typing import Optional

import spacy
from spacy.cli._util import Arg, Opt
from wasabi import msg

from ..benchmark.runner import size_on_disk_mb
from ..quantize import DTYPES, count_transformer_parameters, quantize_pipeline
from ..student import find_transformer
from ._util import fastbioner_cli


@fastbioner_cli.command("quantize")
def quantize_cli(
    # fmt: off
    model: str = Arg(..., help="Trained pipeline (path or package), e.g. a distilled student"),
    output_path: Path = Arg(..., help="Output directory for the quantised pipeline"),
    dtype: str = Opt("qint8", "--dtype", help=f"Weight type of the quantised Linear layers: {', '.join(DTYPES)}"),
    max_batch_items: Optional[int] = Opt(None, "--max-batch-items", min=1, help="Set the transformer's max_batch_items, the padded size of its length-sorted sub-batches (e.g. 512 on CPU); kept when unset"),
    # fmt: on
) -> None:
    """Quantise the transformer's Linear layers to int8 (PyTorch dynamic
    quantisation) and save the pipeline, which `spacy.load` returns quantised.
    Quantise after training or distillation: the int8 pipeline cannot be trained."""
    if dtype not in DTYPES:
        msg.fail(f"Unknown --dtype {dtype!r}: expected one of {', '.join(DTYPES)}", exits=1)
    nlp = spacy.load(model)
    try:
        quantized = quantize_pipeline(nlp, dtype=dtype, max_batch_items=max_batch_items)
    except ValueError as err:
        msg.fail(str(err), exits=1)
    output_path.mkdir(parents=True, exist_ok=True)
    quantized.to_disk(output_path)
    n_params = count_transformer_parameters(find_transformer(quantized).model.transformer)
    before, after = size_on_disk_mb(model), size_on_disk_mb(str(output_path))
    sizes = f" ({before:.1f} MB -> {after:.1f} MB on disk)" if before and after else ""
    msg.good(f"Saved the {dtype} pipeline to {output_path}: {n_params:,} transformer parameters{sizes}")
