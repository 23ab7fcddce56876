"""`spacy fastbioner adapt-encoder`: domain-adaptive MLM training of an encoder."""

from pathlib import Path
from typing import List, Optional

from spacy.cli._util import Arg, Opt
from wasabi import msg

from ._util import fastbioner_cli


@fastbioner_cli.command("adapt-encoder")
def adapt_encoder_cli(
    # fmt: off
    encoder: str = Arg(..., help="Hugging Face hub name or local folder of the encoder"),
    output_path: Path = Arg(..., help="Output folder: the adapted encoder, its checkpoints and report"),
    texts: List[Path] = Opt(
        ...,
        "--text",
        "-t",
        help="Raw text file, one document per line (repeatable); never test text",
        exists=True,
        dir_okay=False,
    ),
    max_steps: int = Opt(2000, "--max-steps", help="Optimizer steps in all (a resumed run continues to this count)"),
    batch_size: int = Opt(32, "--batch-size", "-b", help="Blocks per step"),
    max_length: int = Opt(128, "--max-length", help="Wordpieces per block, special tokens included"),
    learn_rate: float = Opt(5e-5, "--learn-rate", help="Peak learning rate"),
    warmup_steps: int = Opt(100, "--warmup-steps", help="Linear learning-rate warm-up steps"),
    head_warmup_steps: int = Opt(
        100, "--head-warmup-steps", help="Steps that train the MLM head alone, the encoder frozen"
    ),
    mlm_probability: float = Opt(0.15, "--mlm-probability", help="Share of wordpieces masked"),
    no_whole_word: bool = Opt(False, "--no-whole-word-mask", help="Mask wordpieces independently"),
    heldout_docs: int = Opt(200, "--heldout-docs", help="Documents held out for perplexity"),
    eval_steps: int = Opt(200, "--eval-steps", help="Steps between held-out evaluations"),
    save_steps: int = Opt(100, "--save-steps", help="Steps between checkpoints"),
    seed: int = Opt(0, "--seed", help="Random seed"),
    max_minutes: Optional[float] = Opt(
        None, "--max-minutes", help="Stop with a checkpoint after this many minutes; run again to resume"
    ),
    stop_at_step: Optional[int] = Opt(
        None, "--stop-at-step", help="Stop with a checkpoint at this step, keeping the schedule of --max-steps"
    ),
    n_threads: Optional[int] = Opt(None, "--n-threads", help="torch threads (default: torch's)"),
    allow_test: bool = Opt(False, "--allow-test", help="Accept files named like test splits"),
    # fmt: on
) -> None:
    """Continue masked-language-model training of ENCODER on in-domain raw text
    and write a Hugging Face folder that `teacher_model` accepts. Run it again
    with the same arguments to resume from its last checkpoint."""
    import torch

    from ..encoder.adapt import AdaptSettings, adapt_encoder

    if n_threads:
        torch.set_num_threads(n_threads)
    settings = AdaptSettings(
        max_steps=max_steps,
        batch_size=batch_size,
        max_length=max_length,
        learn_rate=learn_rate,
        warmup_steps=warmup_steps,
        head_warmup_steps=head_warmup_steps,
        mlm_probability=mlm_probability,
        whole_word_mask=not no_whole_word,
        heldout_docs=heldout_docs,
        eval_steps=eval_steps,
        save_steps=save_steps,
        seed=seed,
    )
    try:
        report = adapt_encoder(
            encoder,
            output_path,
            texts,
            settings=settings,
            max_minutes=max_minutes,
            stop_at_step=stop_at_step,
            allow_test=allow_test,
        )
    except (OSError, ValueError) as err:
        msg.fail(str(err), exits=1)
    ppl = report["heldout_perplexity"]
    tok = report["tokenization"]
    msg.table(
        [
            ("fresh head", _fmt(ppl["fresh_head"])),
            ("head warmed up (encoder as given)", _fmt(ppl["head_warmed_up"])),
            ("adapted", _fmt(ppl["final"])),
        ],
        header=("held-out perplexity", ""),
        divider=True,
    )
    msg.info(f"{tok['wordpieces_per_word']:.2f} wordpieces per word; {tok['share_of_words_split']:.1%} of words split")
    state = "complete" if report["complete"] else f"stopped at step {report['steps']}: run again to resume"
    msg.good(f"Saved the adapted encoder to {output_path} ({report['epochs']:.2f} epochs, {state})")


def _fmt(value: Optional[float]) -> str:
    return "-" if value is None else f"{value:,.2f}"
