"""The size of a pipeline on disk."""

from pathlib import Path
from typing import Optional, Union

from spacy.util import get_package_path


def size_on_disk(model: Union[str, Path, None]) -> Optional[int]:
    """The bytes of all files of a pipeline: a folder, or an installed package.

    model (Union[str, Path, None]): A pipeline folder or a package name.
    RETURNS (Optional[int]): The size in bytes, or None when the folder or
        package does not exist (or `model` is None).
    """
    if model is None:
        return None
    path = Path(model)
    if not path.is_dir():
        try:
            path = get_package_path(str(model))
        except (ImportError, ValueError):  # not an installed package either
            return None
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())
