"""Copy a pipeline with settings of its config changed, as `spacy.load`'s
`config` argument changes them: e.g. an OpenVINO student whose CPU plugin
keeps fewer compiled kernels.

    python project/scripts/override_config.py training/NCBI-disease/student-openvino-int8 \
        training/NCBI-disease/student-openvino-int8-cache500 \
        --set components.transformer.model.cache_capacity=500
"""

from pathlib import Path
from typing import List

import srsly
import typer
from wasabi import msg


def main(
    # fmt: off
    model: Path = typer.Argument(..., help="Pipeline folder", exists=True, file_okay=False),
    output: Path = typer.Argument(..., help="Folder of the copy"),
    settings: List[str] = typer.Option(..., "--set", help="SECTION.KEY=VALUE, the value as JSON (else a string)"),
    # fmt: on
) -> None:
    from spacy.util import dot_to_dict

    from spacy_fastbioner.loading import load_pipeline

    overrides = {}
    for setting in settings:
        key, sep, value = setting.partition("=")
        if not sep:
            msg.fail(f"--set takes SECTION.KEY=VALUE, got {setting!r}", exits=1)
        try:
            overrides[key] = srsly.json_loads(value)
        except ValueError:
            overrides[key] = value
    nlp = load_pipeline(model, config=dot_to_dict(overrides))
    nlp.to_disk(output)
    msg.good(f"Wrote {output} with {overrides}")


if __name__ == "__main__":
    typer.run(main)
