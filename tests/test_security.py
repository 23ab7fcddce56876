"""No pickle at load: a pipeline folder whose weights carry a pickled code
payload is refused with a clear error, and the payload never runs; the
plugin's own source never unpickles."""

import ast
import io
import os
import pickle
from pathlib import Path
from unittest import mock

import pytest
import spacy
import torch
from typer.testing import CliRunner

from spacy_fastbioner.cli import fastbioner_cli
from spacy_fastbioner.loading import UnsafePipelineError, load_pipeline
from spacy_fastbioner.runtime.quantize import quantize_pipeline

PACKAGE = Path(__file__).parent.parent / "spacy_fastbioner"


class Payload:
    """Unpickling this creates the folder `marker`."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return os.mkdir, (str(self.marker),)


def save_with_payload(nlp, path: Path, marker: Path) -> None:
    """Save the pipeline with a payload in the transformer's weights, as a
    tampered download would carry it."""
    real_save = torch.save

    def save(obj, f, *args, **kwargs):
        return real_save({**obj, "payload": Payload(marker)}, f, *args, **kwargs)

    with mock.patch.object(torch, "save", save):
        nlp.to_disk(path)


def test_the_payload_is_live(tmp_path):
    """Unpickled without weights_only, the payload runs: so its absence below
    means it was refused, not that it was harmless."""
    buffer = io.BytesIO()
    torch.save({"payload": Payload(tmp_path / "ran")}, buffer)
    buffer.seek(0)
    torch.load(buffer, weights_only=False)
    assert (tmp_path / "ran").is_dir()


@pytest.mark.parametrize("kind", ["fp32", "int8"])
def test_pipeline_with_pickled_code_is_refused(trained_teacher, tmp_path, kind):
    marker = tmp_path / "payload-ran"
    nlp = trained_teacher if kind == "fp32" else quantize_pipeline(trained_teacher)
    save_with_payload(nlp, tmp_path / "evil", marker)
    assert not marker.exists()
    with pytest.raises(pickle.UnpicklingError):
        spacy.load(tmp_path / "evil")
    with pytest.raises(UnsafePipelineError, match=r"evil: refusing to load the pipeline: .*posix\.mkdir"):
        load_pipeline(tmp_path / "evil")
    result = CliRunner().invoke(fastbioner_cli, ["quantize", str(tmp_path / "evil"), str(tmp_path / "out")])
    assert result.exit_code == 1
    assert "refusing to load the pipeline" in " ".join(result.output.split())
    assert not marker.exists()
    assert not (tmp_path / "out").exists()


def test_load_pipeline_refuses_torchs_unsafe_switch(trained_teacher, tmp_path, monkeypatch):
    trained_teacher.to_disk(tmp_path / "nlp")
    monkeypatch.setenv("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", "1")
    with pytest.raises(UnsafePipelineError, match="TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD"):
        load_pipeline(tmp_path / "nlp")
    monkeypatch.delenv("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD")
    assert load_pipeline(tmp_path / "nlp").pipe_names == trained_teacher.pipe_names


def unsafe_loads(source: str) -> list:
    """Calls in Python source that can unpickle code: torch.load without
    weights_only=True, pickle/dill/joblib loads, numpy.load(allow_pickle=True)."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.Call):
            continue
        name = ast.unparse(node.func)
        keywords = {kw.arg: ast.unparse(kw.value) for kw in node.keywords}
        if name.endswith("torch.load") and keywords.get("weights_only") != "True":
            found.append(f"{node.lineno}: {name}")
        elif name in ("pickle.load", "pickle.loads", "dill.load", "dill.loads", "joblib.load"):
            found.append(f"{node.lineno}: {name}")
        elif name.endswith("numpy.load") and keywords.get("allow_pickle") == "True":
            found.append(f"{node.lineno}: {name}")
    return found


def test_the_plugin_never_unpickles():
    assert unsafe_loads("torch.load(f)\ntorch.load(f, weights_only=False)\npickle.loads(b)") == [
        "1: torch.load",
        "2: torch.load",
        "3: pickle.loads",
    ]
    assert unsafe_loads("torch.load(f, map_location='cpu', weights_only=True)") == []
    found = {
        str(path.relative_to(PACKAGE)): unsafe_loads(path.read_text(encoding="utf8"))
        for path in sorted(PACKAGE.rglob("*.py"))
    }
    assert {path: calls for path, calls in found.items() if calls} == {}
