"""The Ray backend of `spacy fastbioner annotate` against the local one, on a
local Ray (two CPUs, loopback only). Skipped only where Ray is not installed
(`pip install spacy-fastbioner[ray]`; `make install` installs it)."""

import json
from pathlib import Path
from typing import Dict

import pytest
from helpers import synthetic_sentences

from spacy_fastbioner.annotate import annotate
from spacy_fastbioner.annotate.shards import MANIFEST, SHARDS_DIR

ray = pytest.importorskip("ray")
bioc = pytest.importorskip("bioc")


@pytest.fixture(scope="module")
def local_ray():
    ray.init(
        num_cpus=2,
        include_dashboard=False,
        _node_ip_address="127.0.0.1",
        log_to_driver=False,
        runtime_env={"env_vars": {"TOKENIZERS_PARALLELISM": "false", "OMP_NUM_THREADS": "1"}},
    )
    yield
    ray.shutdown()


def outputs(folder: Path) -> Dict[str, bytes]:
    files = {p.name: p.read_bytes() for p in (folder / SHARDS_DIR).iterdir()}
    files.update({name: (folder / name).read_bytes() for name in ("errors.jsonl", "summary.json")})
    if (folder / "html").is_dir():
        files.update({f"html/{p.name}": p.read_bytes() for p in (folder / "html").iterdir()})
    return files


def inputs(folder: Path):
    sents = [" ".join(words) + " ." for words, _ in synthetic_sentences(60, seed=3)]
    (folder / "a.txt").write_text("\n".join(sents[:25]) + "\n\n" + "\n".join(sents[25:30]) + "\n", encoding="utf8")
    with (folder / "b.jsonl").open("w", encoding="utf8") as file_:
        for i, sent in enumerate(sents[30:]):
            file_.write(json.dumps({"id": f"b{i}", "text": sent}) + "\n")
        file_.write('{"id": "broken"\n')
    return [folder / "a.txt", folder / "b.jsonl"]


def test_ray_output_equals_local_output(tmp_path: Path, raw_text_model: Path, local_ray) -> None:
    files = inputs(tmp_path)
    settings = dict(shard_size=6, batch_size=4, formats=("jsonl", "pubtator", "bioc"), html=5, quiet=True)
    local = annotate(str(raw_text_model), files, tmp_path / "local", **settings)
    remote = annotate(str(raw_text_model), files, tmp_path / "ray", backend="ray", n_process=2, **settings)
    assert remote == local and local["n_read"] == 62 and local["n_errors"] == 2
    assert outputs(tmp_path / "ray") == outputs(tmp_path / "local")


def test_ray_resumes_a_local_run(tmp_path: Path, raw_text_model: Path, local_ray) -> None:
    """Same manifest, same resume rules: Ray finishes what a local run left."""
    files = inputs(tmp_path)
    annotate(str(raw_text_model), files, tmp_path / "whole", shard_size=6, quiet=True)
    out = tmp_path / "out"
    annotate(str(raw_text_model), files, out, shard_size=6, quiet=True)
    lines = (out / MANIFEST).read_text(encoding="utf8").splitlines()
    (out / MANIFEST).write_text("\n".join(lines[:4]) + "\n", encoding="utf8")  # as if stopped after 3 shards
    for name in ("summary.json", "errors.jsonl"):
        (out / name).unlink()
    annotate(str(raw_text_model), files, out, shard_size=6, quiet=True, backend="ray", n_process=2, resume=True)
    assert outputs(out) == outputs(tmp_path / "whole")
    assert len((out / MANIFEST).read_text(encoding="utf8").splitlines()) == len(lines)
