"""Compare NNCF's options for OpenVINO's static int8 export on the DEV set:
each option exports the dynamic-KD students of some seeds (`export_pipeline`
with runtime="openvino", sub-batches of 512 padded tokens, padded unless
--packed, as in the recorded run) and scores them
on the dev docs (gold tokens). It chose the export's calibration size
(`runtime.N_CALIBRATION`); the test set is scored only for the chosen one
(`spacy project run openvino-seed`).

    python project/scripts/openvino_study.py fp32 default nosq sq0.5 nofbc performance n1024 \
        --seeds 1,2,3 --output metrics/NCBI-disease/openvino-study.json

Options: fp32 (the OpenVINO fp32 export, the reference), default (NNCF's
transformer preset on 512 sentences), nosq (SmoothQuant off), sq<alpha>
(SmoothQuant's alpha for MatMuls), nofbc (full bias correction instead of
the fast one), performance (symmetric activations), n1024 (1,024 sentences).
"""

from pathlib import Path
from typing import Any, Dict, List, Optional

import typer
from wasabi import msg


def _quantizer(option: str):
    """`quantize_ir` with the option's NNCF settings."""
    import nncf

    from spacy_fastbioner.runtime.base import as_int64

    def quantize(model: Any, calibration: List[Dict[str, Any]]) -> Any:
        names = [port.get_any_name() for port in model.inputs]
        feeds = [{name: as_int64(batch[name]) for name in names} for batch in calibration]
        kwargs: Dict[str, Any] = {"model_type": nncf.ModelType.TRANSFORMER, "subset_size": len(feeds)}
        if option == "nosq":
            kwargs["advanced_parameters"] = nncf.AdvancedQuantizationParameters(smooth_quant_alpha=-1)
        elif option.startswith("sq"):
            alphas = nncf.AdvancedSmoothQuantParameters(matmul=float(option[2:]))
            kwargs["advanced_parameters"] = nncf.AdvancedQuantizationParameters(smooth_quant_alphas=alphas)
        elif option == "nofbc":
            kwargs["fast_bias_correction"] = False
        elif option == "performance":
            kwargs["preset"] = nncf.QuantizationPreset.PERFORMANCE
        return nncf.quantize(model, nncf.Dataset(feeds), **kwargs)

    return quantize


def main(
    # fmt: off
    options: List[str] = typer.Argument(..., help="fp32, default, nosq, sq<alpha>, nofbc, performance, n1024"),
    corpus: str = typer.Option("NCBI-disease", "--corpus", help="Corpus of training/<corpus>/student-dynamic-seed<k>"),
    seeds: str = typer.Option("1,2,3", "--seeds", help="Seeds of the dynamic-KD students"),
    threads: int = typer.Option(1, "--threads", help="torch / OpenVINO threads"),
    packed: bool = typer.Option(
        False, "--packed/--padded", help="Export packed batches (the study's recorded run: padded)"
    ),
    output: Optional[Path] = typer.Option(None, "--output", help="JSON with the dev F of each option and seed"),
    # fmt: on
) -> None:
    import srsly
    import torch

    from spacy_fastbioner.benchmark.data import load_gold_docs
    from spacy_fastbioner.benchmark.runner import score
    from spacy_fastbioner.loading import load_pipeline
    from spacy_fastbioner.runtime import architecture, export_pipeline

    torch.set_num_threads(threads)
    dev, train = Path("corpus") / corpus / "dev.spacy", Path("corpus") / corpus / "train.spacy"
    results: Dict[str, Dict[int, float]] = {}
    original = architecture.quantize_ir
    for option in options:
        architecture.quantize_ir = _quantizer(option)
        results[option] = {}
        try:
            for seed in [int(s) for s in seeds.split(",")]:
                nlp = load_pipeline(Path("training") / corpus / f"student-dynamic-seed{seed}" / "model-best")
                if option == "fp32":
                    exported = export_pipeline(nlp, runtime="openvino", int8=False, max_batch_items=512, packed=packed)
                else:
                    docs = load_gold_docs(train, nlp.vocab)[: 1024 if option == "n1024" else 512]
                    exported = export_pipeline(
                        nlp, runtime="openvino", int8=True, calibration=docs, max_batch_items=512, packed=packed
                    )
                accuracy, _ = score(exported, load_gold_docs(dev, exported.vocab), 64)
                results[option][seed] = 100 * accuracy["f"]
                msg.text(f"{option} seed {seed}: dev F {results[option][seed]:.2f}")
        finally:
            architecture.quantize_ir = original
    if output is not None:
        output.parent.mkdir(parents=True, exist_ok=True)
        srsly.write_json(output, {"corpus": corpus, "split": "dev", "f": results})
        msg.good(f"Wrote {output}")


if __name__ == "__main__":
    typer.run(main)
