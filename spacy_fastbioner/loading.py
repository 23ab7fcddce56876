"""Loading a pipeline without running code from its files.

spacy-transformers restores the transformer's weights with `torch.load`, whose
default since torch 2.6 (the plugin requires it) is `weights_only=True`: a
file that pickles anything but tensors and plain containers is refused before
any of it runs. Any `torch.load` of the plugin's own passes `weights_only=True`
explicitly (`tests/test_security.py` checks the source). `load_pipeline` keeps
the guarantee for the pipelines that the plugin's commands load, and turns
torch's refusal into an error that names the pipeline.
"""

import os
import pickle
from pathlib import Path
from typing import Any, Union

from spacy.language import Language
from spacy.util import load_model

# torch.load falls back to weights_only=False, where a caller does not pass
# weights_only, when this variable is set.
_UNSAFE_TORCH_LOAD = "TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD"


class UnsafePipelineError(ValueError):
    """A pipeline whose files would run code when loaded, or that could only
    be loaded in a way that would let them."""


def load_pipeline(model: Union[str, Path], **kwargs: Any) -> Language:
    """Load a pipeline (a folder or a package name) with `spacy.load`,
    refusing files that carry pickled code.

    model (Union[str, Path]): The pipeline folder or package name.
    **kwargs: Passed to `spacy.util.load_model` (e.g. `exclude`, `config`).
    RETURNS (Language): The loaded pipeline.
    RAISES UnsafePipelineError: The weights hold more than tensors, or
        TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD is set.
    """
    if os.environ.get(_UNSAFE_TORCH_LOAD, "0").lower() in ("1", "y", "yes", "true"):
        raise UnsafePipelineError(
            f"{model}: refusing to load a pipeline while {_UNSAFE_TORCH_LOAD} is set: it lets "
            "torch.load unpickle arbitrary objects, so the pipeline's files could run code. Unset it."
        )
    try:
        return load_model(model, **kwargs)
    except pickle.UnpicklingError as err:
        reason = str(err).strip().splitlines()
        detail = next((line for line in reason if "GLOBAL" in line), reason[0] if reason else "")
        raise UnsafePipelineError(
            f"{model}: refusing to load the pipeline: its weights hold pickled objects other than "
            f"tensors, which could run code ({detail.strip()}). Load pipelines only from sources you "
            "trust, and never with torch.load(weights_only=False)."
        ) from None
