"""The `spacy fastbioner` command group, attached to spaCy's CLI app."""

import typer
from spacy.cli._util import app

fastbioner_cli = typer.Typer(
    name="fastbioner",
    help="FastBioNER: make, distil, evaluate and benchmark biomedical NER students.",
    no_args_is_help=True,
)
app.add_typer(fastbioner_cli)
