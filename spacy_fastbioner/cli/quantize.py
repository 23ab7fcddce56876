"""`spacy fastbioner quantize`: an int8 copy of a trained pipeline for CPU inference."""

from pathlib import Path
from typing import Optional

from spacy.cli._util import Arg, Opt
from wasabi import msg

from ._util import fastbioner_cli


@fastbioner_cli.command("quantize")
def quantize_cli(
    # fmt: off
    model: str = Arg(..., help="Trained pipeline (path or package), e.g. a distilled student"),
    output_path: Path = Arg(..., help="Output directory for the quantised pipeline"),
    dtype: str = Opt("qint8", "--dtype", help="Weight type of the quantised Linear layers: qint8"),
    max_batch_items: Optional[int] = Opt(
        None,
        "--max-batch-items",
        min=1,
        help="Set the transformer's max_batch_items, the padded size of its length-sorted sub-batches (e.g. 512 on CPU); kept when unset",
    ),
    # fmt: on
) -> None:
    """Quantise the transformer's Linear layers to int8 (PyTorch dynamic
    quantisation) and save the pipeline, which `spacy.load` returns quantised.
    Quantise after training or distillation: the int8 pipeline cannot be trained."""
    from ..encoder.transformer import count_parameters
    from ..loading import load_pipeline
    from ..runtime.quantize import DTYPES, quantize_pipeline
    from ..util.disk_size import size_on_disk

    if dtype not in DTYPES:
        msg.fail(f"Unknown --dtype {dtype!r}: expected one of {', '.join(DTYPES)}", exits=1)
    try:
        nlp = load_pipeline(model)
        quantized = quantize_pipeline(nlp, dtype=dtype, max_batch_items=max_batch_items)
    except (OSError, ValueError) as err:
        msg.fail(f"Cannot quantise the pipeline {model!r}", str(err), exits=1)
    output_path.mkdir(parents=True, exist_ok=True)
    quantized.to_disk(output_path)
    n_params = count_parameters(quantized)["transformer"] or 0
    before, after = size_on_disk(model), size_on_disk(output_path)
    sizes = f" ({before / 2**20:.1f} MB -> {after / 2**20:.1f} MB on disk)" if before and after else ""
    msg.good(f"Saved the {dtype} pipeline to {output_path}: {n_params:,} transformer parameters{sizes}")
