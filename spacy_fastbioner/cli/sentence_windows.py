"""`spacy fastbioner sentence-windows MODEL OUTPUT`: feed a trained pipeline's
transformer one sentence at a time."""

from pathlib import Path

from spacy.cli._util import Arg, Opt
from spacy.language import Language
from wasabi import msg

from ._util import fastbioner_cli


@fastbioner_cli.command("sentence-windows")
def sentence_windows_cli(
    # fmt: off
    model: str = Arg(..., help="Trained pipeline with a transformer: a package name or a path"),
    output_path: Path = Arg(..., help="Output directory for the upgraded pipeline", file_okay=False),
    window: int = Opt(128, "--window", "-w", help="Most tokens in a transformer span"),
    stride: int = Opt(96, "--stride", "-s", help="Tokens between two span starts in a sentence longer than the window"),
    # fmt: on
) -> None:
    """Add a `fastbioner_sentences` component before the transformer and set
    the transformer's span getter to `spacy_fastbioner.sentence_spans.v1`
    (one span per sentence, long sentences strided), then save the pipeline.
    For a teacher fine-tuned on single sentences, so that raw multi-sentence
    text is fed to it as it was trained."""
    from ..loading import load_pipeline

    try:
        nlp = load_pipeline(model)
    except (OSError, ValueError) as err:
        msg.fail(f"Cannot load the pipeline {model!r}", str(err), exits=1)
    try:
        upgrade(nlp, output_path, window=window, stride=stride)
    except ValueError as err:
        msg.fail(f"Cannot upgrade the pipeline {model!r}", str(err), exits=1)
    msg.good(
        f"Saved {output_path}: pipeline {nlp.pipe_names}, span getter "
        f"sentence_spans.v1 (window {window}, stride {stride})"
    )


def upgrade(nlp: Language, output_path: Path, *, window: int, stride: int) -> None:
    """Apply `with_sentence_windows` to the pipeline and save it to `output_path`."""
    from ..encoder.sentence_windows import with_sentence_windows

    with_sentence_windows(nlp, window=window, stride=stride)
    output_path.mkdir(parents=True, exist_ok=True)
    nlp.to_disk(output_path)
