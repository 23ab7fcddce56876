"""`spacy fastbioner teacher-targets`: run the teacher once over the
distillation corpus and store its tag logits for `spacy distill`."""

from pathlib import Path
from typing import List, Optional

from spacy.cli._util import Arg, Opt, setup_gpu
from wasabi import msg

from ._util import fastbioner_cli


@fastbioner_cli.command("teacher-targets")
def teacher_targets_cli(
    # fmt: off
    teacher_path: Path = Arg(..., help="Trained teacher pipeline", exists=True, file_okay=False),
    output_path: Path = Arg(..., help="Output folder of the store"),
    data: Optional[List[Path]] = Opt(
        None,
        "--data",
        "-d",
        help="Gold corpus (.spacy), repeatable: the distillation's gold training set",
        exists=True,
        dir_okay=False,
    ),
    raw: Optional[List[Path]] = Opt(
        None, "--raw", "-r", help="Unlabelled text, one text per line, repeatable", exists=True, dir_okay=False
    ),
    raw_limit: int = Opt(
        0, "--raw-limit", help="Sentences read from each text file (the first ones, as the reader's limit); 0 for all"
    ),
    min_length: int = Opt(
        3, "--min-length", help="Skip unlabelled sentences of fewer tokens (as the student config's reader)"
    ),
    max_length: int = Opt(200, "--max-length", help="Skip unlabelled sentences of more tokens; 0 for no cap"),
    batch_size: int = Opt(64, "--batch-size", "-b", help="Docs per teacher batch"),
    use_gpu: int = Opt(-1, "--gpu-id", "-g", help="GPU ID or -1 for CPU"),
    # fmt: on
) -> None:
    """Run the teacher once over the gold training set and the unlabelled
    text, and store each token's tag logits (float16, memory-mapped) with the
    teacher's identity. Pass the store to the distillation as
    `--paths.teacher_targets OUTPUT`: the step then reads the teacher's logits
    instead of running it. The hidden-state loss still needs the live teacher.
    """
    from ..distill.targets import build_teacher_targets, read_distillation_docs
    from ..loading import load_pipeline

    if not data and not raw:
        msg.fail("Nothing to do: give the corpus with --data and/or --raw", exits=1)
    setup_gpu(use_gpu)
    teacher = load_pipeline(teacher_path)
    docs = read_distillation_docs(
        teacher, data or [], raw or [], raw_limit=raw_limit, min_length=min_length, max_length=max_length
    )
    msg.info(f"{len(docs):,} docs, {sum(len(d) for d in docs):,} tokens")
    meta = build_teacher_targets(teacher, docs, output_path, batch_size=batch_size, total=len(docs))
    msg.good(
        f"Saved the logits of {meta['n_docs']:,} distinct docs ({meta['n_tokens']:,} tokens, "
        f"{meta['n_tags']} tags) to {output_path}"
    )
