"""project/README.md holds what `spacy project document` makes of project.yml."""

import shutil
from pathlib import Path

from weasel.cli.document import project_document

ROOT = Path(__file__).parent.parent
README = ROOT / "project" / "README.md"


def test_project_readme_is_current(tmp_path):
    """Regenerating the auto-generated part of a copy changes nothing."""
    copy = tmp_path / "README.md"
    shutil.copyfile(README, copy)
    project_document(ROOT, copy)
    assert copy.read_text(encoding="utf8") == README.read_text(encoding="utf8"), (
        f"{README} is not what project.yml gives: run "
        "`python -m spacy project document . --output project/README.md` from the repository root"
    )
