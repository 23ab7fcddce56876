"""Model packages: names, requirements, the model card, and a wheel that
installs into a fresh virtual environment without an index (with the plugin's
own wheel, built from its sdist) and loads offline."""

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import tarfile
import zipfile
from pathlib import Path
from typing import Dict, Tuple

import pytest
import spacy
import srsly
from helpers import make_examples, make_pipeline, synthetic_sentences, train_pipeline
from spacy.cli.evaluate import evaluate
from spacy.tokens import DocBin
from spacy.util import get_minor_version, get_package_version, is_compatible_version
from thinc.api import Config

from spacy_fastbioner import __version__
from spacy_fastbioner.encoder.student import make_student
from spacy_fastbioner.packaging.model_card import (
    NOT_MEASURED,
    card_context,
    read_benchmark_speed,
    read_scores,
    render_card,
)
from spacy_fastbioner.packaging.package import corpus_slug, make_meta, model_name, package_model, requirements

REPO = Path(__file__).parent.parent
TEMPLATES = REPO / "project" / "templates"
PACKAGE = "en_fastbioner_ncbi_disease"
TEXTS = [
    "the patients with breast cancer were treated with aspirin",
    "mice showed no signs of diabetes after lithium carbonate",
    "we report that hereditary colitis and tumour levels were high",
    "",
]
CHECK_SCRIPT = """
import importlib, json, sys
from unittest import mock
import spacy, spacy_fastbioner
from spacy.cli.info import info_spacy

validate = importlib.import_module("spacy.cli.validate")  # the module, not the command

texts, table = json.loads(sys.argv[1]), json.loads(sys.argv[2])
nlp = spacy.load("{package}")
def ents(docs):
    return [[[e.start_char, e.end_char, e.label_] for e in doc.ents] for doc in docs]
single = ents(nlp.pipe(texts))
multi = ents(nlp.pipe(texts * 3, n_process=2, batch_size=2))
links = [[e.kb_id_ for e in doc.ents] for doc in nlp.pipe(texts)]
# `spacy validate` offline: the compatibility table is served from a file.
response = mock.Mock(status_code=200, json=lambda: table)
with mock.patch.object(validate.requests, "get", return_value=response):
    pkgs, _ = validate.get_model_pkgs(silent=True)
print(json.dumps({{
    "plugin": spacy_fastbioner.__file__,
    "model": nlp.path.as_posix(),
    "meta": nlp.meta,
    "single": single,
    "multi": multi,
    "links": links,
    "pipelines": info_spacy()["Pipelines"],
    "validate": pkgs.get("{package}"),
}}))
"""


def install_and_check(tmp_path: Path, plugin: Path, wheel: Path, package: str, **env_extra: str) -> Tuple[Path, dict]:
    """Install the plugin's wheel and a package's wheel into a fresh venv,
    offline, run CHECK_SCRIPT there, and return the venv's python and the
    script's output."""
    python = fresh_venv(tmp_path)
    subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(python), "install", "--no-index", "--no-deps",
         str(plugin), str(wheel)],
        check=True,
        capture_output=True,
        timeout=900,
    )  # fmt: skip
    # OMP_NUM_THREADS too (conftest sets it for xdist workers): the package runs at torch's default unless told.
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "OMP_NUM_THREADS")}
    env.update(HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", HF_HOME=str(tmp_path / "hf"), **env_extra)
    (tmp_path / "check.py").write_text(CHECK_SCRIPT.format(package=package), encoding="utf8")
    # The shape of spaCy's published table (explosion/spacy-models compatibility.json): the installed
    # spaCy's entry lists its own models, never ours; `spacy validate` then checks our meta's spacy_version.
    minor = get_minor_version(spacy.about.__version__)
    table = {"spacy": {spacy.about.__version__: {"en_core_web_sm": [f"{minor}.0"]}, "4.0.0": {}}}
    proc = subprocess.run(
        [str(python), str(tmp_path / "check.py"), json.dumps(TEXTS), json.dumps(table)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return python, json.loads(proc.stdout.strip().splitlines()[-1])


def entities(nlp, texts):
    return [[[e.start_char, e.end_char, e.label_] for e in doc.ents] for doc in nlp.pipe(texts)]


@pytest.fixture(scope="module")
def trained(tmp_path_factory, tiny_bert) -> Dict:
    """A tiny teacher and its 1-layer student on disk, with test-set metrics
    written by `spacy evaluate` and the student.cfg [distillation] block in the
    student's config, as the workflow leaves them."""
    root = tmp_path_factory.mktemp("packaging")
    teacher = make_pipeline(tiny_bert)
    train_pipeline(teacher, make_examples(teacher, synthetic_sentences(80, seed=1)), epochs=3)
    student = make_student(teacher, n_layers=1)
    teacher.to_disk(root / "teacher")
    student.to_disk(root / "student")
    config = Config().from_disk(root / "student" / "config.cfg")
    student_cfg = Config().from_disk(REPO / "project" / "configs" / "student.cfg", interpolate=True)
    config["distillation"] = student_cfg["distillation"]
    config.to_disk(root / "student" / "config.cfg")
    test_docs = [eg.reference for eg in make_examples(teacher, synthetic_sentences(30, seed=7))]
    DocBin(docs=test_docs).to_disk(root / "test.spacy")
    for role in ("student", "teacher"):
        evaluate(str(root / role), root / "test.spacy", output=root / f"{role}.json")
    return {"root": root, "student": student, "expected": entities(student, TEXTS)}


def make_card(trained, benchmark=None):
    root = trained["root"]
    nlp = spacy.load(root / "student")
    scores = read_scores(root / "student.json")
    meta = make_meta(
        nlp,
        srsly.read_json(TEMPLATES / "meta.json"),
        corpus="NCBI-disease",
        role="student",
        version="0.0.1",
        scores=scores,
    )
    return card_context(
        nlp,
        {**meta, "spacy_version": nlp.meta["spacy_version"]},
        corpus="NCBI-disease",
        role="student",
        model_dir=root / "student",
        teacher_package="en_fastbioner_ncbi_disease_teacher",
        scores=scores,
        teacher_scores=read_scores(root / "teacher.json"),
        teacher_model_dir=root / "teacher",
        benchmark_path=benchmark,
    )


@pytest.mark.parametrize(
    "corpus,role,expected",
    [
        ("NCBI-disease", "student", "fastbioner_ncbi_disease"),
        ("BC5CDR-chem", "student", "fastbioner_bc5cdr_chem"),
        ("BC4CHEMD", "student", "fastbioner_bc4chemd"),
        ("BC5CDR", "student", "fastbioner_bc5cdr"),
        ("NCBI-disease", "teacher", "fastbioner_ncbi_disease_teacher"),
    ],
)
def test_model_name(corpus, role, expected):
    assert model_name(corpus, role) == expected
    assert expected.isidentifier()


def test_model_name_rejects_bad_input():
    with pytest.raises(ValueError, match="role"):
        model_name("NCBI-disease", "assistant")
    with pytest.raises(ValueError, match="corpus"):
        corpus_slug("--")


def test_requirements_admit_the_installed_versions():
    plugin, trf = requirements()
    assert plugin.startswith("spacy-fastbioner>=") and trf.startswith("spacy-transformers>=")
    assert is_compatible_version(__version__, plugin.split("spacy-fastbioner")[1])
    assert is_compatible_version(get_package_version("spacy-transformers"), trf.split("spacy-transformers")[1])
    assert not is_compatible_version("1.5.0", trf.split("spacy-transformers")[1])


def test_read_scores_names_the_file(tmp_path):
    assert read_scores(tmp_path / "missing.json") is None
    srsly.write_json(tmp_path / "other.json", {"token_acc": 1.0})
    with pytest.raises(ValueError, match="other.json"):
        read_scores(tmp_path / "other.json")


def test_model_card_reads_the_metrics(trained):
    context = make_card(trained)
    card = render_card(context, TEMPLATES / "model-card.md.jinja")
    scores = read_scores(trained["root"] / "student.json")
    assert (
        f"| this model (student) | {100 * scores['ents_p']:.2f} | {100 * scores['ents_r']:.2f} | "
        f"{100 * scores['ents_f']:.2f} |" in card
    )
    assert "| `Disease` |" in card and "| `Chemical` |" in card
    assert context["efficiency"][0]["wps"] == NOT_MEASURED
    assert f"{context['efficiency'][0]['size']}" in card and "not run yet" in card
    assert "`step.temperature` | `2.0`" in card and "keeps 1 of the teacher's" in card
    assert "936-942" in card and "Hu, Geng, Deng, Duan" in card


def test_model_card_reads_the_benchmark(trained, tmp_path):
    root = trained["root"]
    speed = {"median": 2000.0, "ci95": [1900.0, 2100.0]}
    srsly.write_json(
        tmp_path / "benchmark.json",
        {
            "models": [
                {"name": "fp32", "path": str(root / "student"), "speed": {"words_per_sec": speed}},
                {"name": "teacher", "path": str(root / "teacher"), "speed": {"words_per_sec": {"median": 1000.0}}},
            ]
        },
    )
    assert read_benchmark_speed(tmp_path / "benchmark.json", root / "student") == speed
    assert read_benchmark_speed(tmp_path / "benchmark.json", root / "teacher")["median"] == 1000.0
    context = make_card(trained, tmp_path / "benchmark.json")
    assert context["efficiency"][0]["wps"] == "2,000 (1,900-2,100)"
    assert context["comparison"]["wps"] == "2.00x"


def test_model_card_never_shows_another_models_figures(trained, tmp_path):
    """Entries named like the roles, but of other folders, are not this
    model's or its teacher's: the card says "not measured"."""
    srsly.write_json(
        tmp_path / "benchmark.json",
        {
            "models": [
                {
                    "name": "student",
                    "path": str(tmp_path / "other-student"),
                    "speed": {"words_per_sec": {"median": 9.0}},
                },
                {"name": "teacher", "path": "elsewhere", "speed": {"words_per_sec": {"median": 1000.0}}},
            ]
        },
    )
    root = trained["root"]
    assert read_benchmark_speed(tmp_path / "benchmark.json", root / "student") is None
    assert read_benchmark_speed(tmp_path / "benchmark.json", None) is None
    context = make_card(trained, tmp_path / "benchmark.json")
    assert [row["wps"] for row in context["efficiency"]] == [NOT_MEASURED, NOT_MEASURED]
    assert context["comparison"]["wps"] == NOT_MEASURED


@pytest.fixture(scope="module")
def plugin_wheel(tmp_path_factory) -> Path:
    """The plugin's wheel (built once, for every package that is installed)."""
    return build_plugin(tmp_path_factory.mktemp("plugin"))


def build_plugin(tmp_path: Path) -> Path:
    """The plugin's sdist, and its wheel built from the sdist, offline."""
    src = tmp_path / "src"
    src.mkdir()
    for name in ("setup.py", "README.md", "MANIFEST.in"):
        shutil.copy(REPO / name, src / name)
    for folder in ("spacy_fastbioner", "tests"):
        shutil.copytree(REPO / folder, src / folder, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    dist = tmp_path / "dist"
    env = {**os.environ, "PIP_NO_INDEX": "1"}
    subprocess.run(
        [sys.executable, "-m", "build", "--no-isolation", "--outdir", str(dist), str(src)],
        check=True,
        capture_output=True,
        env=env,
        timeout=900,
    )
    sdist = next(dist.glob("spacy_fastbioner-*.tar.gz"))
    names = {name.split("/", 1)[1] for name in tarfile.open(sdist).getnames() if "/" in name}
    assert {
        "README.md",
        "setup.py",
        "spacy_fastbioner/py.typed",
        "spacy_fastbioner/about.py",
        "tests/conftest.py",
    } <= names
    wheel = next(dist.glob("spacy_fastbioner-*.whl"))
    with zipfile.ZipFile(wheel) as zf:
        files = zf.namelist()
        entry_points = zf.read(next(f for f in files if f.endswith("entry_points.txt"))).decode()
    assert "spacy_fastbioner/py.typed" in files
    assert "[spacy_factories]" in entry_points and "[spacy_cli]" in entry_points
    return wheel


def fresh_venv(tmp_path: Path) -> Path:
    """A virtual environment with no pip and no index, whose only view of the
    heavy dependencies (spaCy, torch, transformers) is a folder of links to
    this environment's site-packages, without the plugin or any .pth file."""
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=900)
    python = venv / "bin" / "python"
    site = Path(
        subprocess.run(
            [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
            check=True,
            capture_output=True,
            text=True,
            timeout=900,
        ).stdout.strip()
    )
    deps = tmp_path / "deps"
    deps.mkdir()
    for entry in Path(sysconfig.get_paths()["purelib"]).iterdir():
        if not entry.name.startswith(("spacy_fastbioner", "__editable__", "en_fastbioner")) and entry.suffix != ".pth":
            (deps / entry.name).symlink_to(entry)
    (site / "_fastbioner_test_deps.pth").write_text(f"{deps}\n", encoding="utf8")
    return python


def test_package_installs_and_loads_offline(trained, plugin_wheel, tmp_path, monkeypatch):
    """The package, with a `fastbioner_linker` and its KB (`--kb`), installs into a fresh venv
    and loads there offline; its card states the KB's sources and size."""
    from spacy_fastbioner.kb import ConceptKB
    from spacy_fastbioner.packaging.package import add_linker

    root = trained["root"]
    for var in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy"):
        monkeypatch.setenv(var, "http://127.0.0.1:9")  # any download fails
    kb = ConceptKB()
    found = {(ent.text, ent.label_) for doc in trained["student"].pipe(TEXTS) for ent in doc.ents}
    for k, (text, label) in enumerate(sorted(found)):
        kb.add_alias(text, [f"D{k:06d}"], [1], type_=label)
    kb.sources.append({"kind": "pubtator", "file": "train.txt", "names": len(found)})
    kb.to_disk(tmp_path / "kb")
    linked = spacy.load(root / "student")
    add_linker(linked, tmp_path / "kb")
    expected_links = [[ent.kb_id_ for ent in doc.ents] for doc in linked.pipe(TEXTS)]
    assert any(link for links in expected_links for link in links)
    result = package_model(
        root / "student",
        tmp_path / "packages",
        corpus="NCBI-disease",
        version="0.0.1",
        meta_template=TEMPLATES / "meta.json",
        card_template=TEMPLATES / "model-card.md.jinja",
        metrics_path=root / "student.json",
        teacher_metrics_path=root / "teacher.json",
        teacher_model_dir=root / "teacher",
        benchmark_path=root / "absent.json",
        kb_path=tmp_path / "kb",
        linking_paths=[REPO / "results" / "linking" / "ncbi-disease.json"],
    )
    linker = result.meta["fastbioner"]["linker"]
    assert (linker["concepts"], linker["names"], linker["sources"][0]["file"]) == (len(found), len(found), "train.txt")
    card = (result.package_dir / "README.md").read_text(encoding="utf8")
    assert "## Concept identifiers" in card and f"{len(found)} concepts and {len(found)} names" in card
    assert "| gold spans " not in card and "| ncbi-disease | gold | 303 |" in card
    assert result.name == PACKAGE and result.wheel.name == f"{PACKAGE}-0.0.1-py3-none-any.whl"
    assert result.meta["requirements"] == requirements()
    assert result.meta["performance"]["ents_f"] == read_scores(root / "student.json")["ents_f"]
    with zipfile.ZipFile(result.wheel) as zf:
        assert f"{PACKAGE}/{PACKAGE}-0.0.1/README.md" in zf.namelist()
        assert "spacy_models" in zf.read(f"{PACKAGE}-0.0.1.dist-info/entry_points.txt").decode()
    python, out = install_and_check(tmp_path, plugin_wheel, result.wheel, PACKAGE)
    venv = python.parent.parent
    assert Path(out["plugin"]).is_relative_to(venv) and Path(out["model"]).is_relative_to(venv)
    assert out["meta"]["name"] == "fastbioner_ncbi_disease" and out["meta"]["version"] == "0.0.1"
    assert any(trained["expected"]), "the tiny student predicts no entities: the check would be vacuous"
    assert out["single"] == trained["expected"]
    assert out["multi"] == trained["expected"] * 3
    assert out["links"] == expected_links
    assert out["pipelines"] == {PACKAGE: "0.0.1"}
    validated = out["validate"]
    assert validated["version"] == "0.0.1" and validated["spacy"] == out["meta"]["spacy_version"]
    # The package admits the installed spaCy and no later minor version.
    assert is_compatible_version(spacy.about.__version__, validated["spacy"])
    minor = get_minor_version(spacy.about.__version__)
    assert not is_compatible_version(f"{minor.split('.')[0]}.{int(minor.split('.')[1]) + 1}.0", validated["spacy"])
    assert validated["compat"] is True


@pytest.mark.parametrize("runtime", ["onnx", "openvino"])
def test_runtime_package_installs_and_loads_offline(trained, plugin_wheel, tmp_path, monkeypatch, runtime):
    """`package-student --runtime onnx|openvino`: the int8 export of the
    student, named `..._<runtime>`, requiring its runtime, loads offline in a
    fresh environment and annotates as the export does here (also with
    n_process=2)."""
    needed = {"onnx": ("onnxruntime", "onnx"), "openvino": ("openvino", "nncf", "onnx")}[runtime]
    for module in needed:
        pytest.importorskip(module)
    from helpers import synthetic_sentences, write_iob

    from spacy_fastbioner.runtime import export_pipeline

    root = trained["root"]
    for var in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy"):
        monkeypatch.setenv(var, "http://127.0.0.1:9")
    calibration = write_iob(tmp_path / "train.tsv", synthetic_sentences(16, seed=4))
    with pytest.raises(ValueError, match="exported to a runtime"):
        package_model(
            root / "student",
            tmp_path / "unused",
            corpus="NCBI-disease",
            version="0.0.1",
            meta_template=TEMPLATES / "meta.json",
            card_template=TEMPLATES / "model-card.md.jinja",
            calibration=calibration,
        )
    result = package_model(
        root / "student",
        tmp_path / "packages",
        corpus="NCBI-disease",
        version="0.0.1",
        meta_template=TEMPLATES / "meta.json",
        card_template=TEMPLATES / "model-card.md.jinja",
        metrics_path=root / "student.json",
        runtime=runtime,
        calibration=calibration,
    )
    package = f"{PACKAGE}_{runtime}"
    assert result.name == package
    assert result.meta["requirements"] == requirements(runtime)
    dist = {"onnx": "onnxruntime", "openvino": "openvino"}[runtime]
    assert any(r.startswith(dist) for r in result.meta["requirements"])
    assert result.meta["fastbioner"]["runtime"] == runtime
    # Two threads in the parent: forked workers once hung on the parent's ONNX Runtime thread pool.
    python, out = install_and_check(tmp_path, plugin_wheel, result.wheel, package, OMP_NUM_THREADS="2")
    assert out["meta"]["name"] == f"fastbioner_ncbi_disease_{runtime}"
    from spacy_fastbioner.benchmark.data import load_gold_docs

    docs = load_gold_docs(calibration, trained["student"].vocab)
    expected = entities(export_pipeline(trained["student"], runtime=runtime, int8=True, calibration=docs), TEXTS)
    assert any(expected)
    assert out["single"] == expected
    assert out["multi"] == expected * 3
    assert out["validate"]["compat"] is True


def test_auto_package_is_named_by_its_chosen_runtime(trained, tmp_path):
    """`--runtime auto`: the package holds the form `export --runtime auto` chose on this CPU, is
    named and required by its runtime, and its card states the choice with each candidate."""
    for module in ("onnxruntime", "onnx"):
        pytest.importorskip(module)
    from helpers import synthetic_sentences, write_iob

    from spacy_fastbioner.runtime.choice import FORMS

    root = trained["root"]
    calibration = write_iob(tmp_path / "train.tsv", synthetic_sentences(16, seed=4))
    with pytest.raises(ValueError, match="needs training docs"):
        package_model(
            root / "student",
            tmp_path / "unused",
            corpus="NCBI-disease",
            version="0.0.1",
            meta_template=TEMPLATES / "meta.json",
            card_template=TEMPLATES / "model-card.md.jinja",
            runtime="auto",
        )
    result = package_model(
        root / "student",
        tmp_path / "packages",
        corpus="NCBI-disease",
        version="0.0.1",
        meta_template=TEMPLATES / "meta.json",
        card_template=TEMPLATES / "model-card.md.jinja",
        metrics_path=root / "student.json",
        runtime="auto",
        calibration=calibration,
        dev=root / "test.spacy",
    )
    choice = result.meta["fastbioner"]["runtime_choice"]
    runtime = FORMS[choice["form"]].runtime
    assert result.name == f"{PACKAGE}_{runtime}" and result.meta["fastbioner"]["runtime"] == runtime
    assert result.meta["requirements"] == requirements(runtime)
    assert FORMS[choice["form"]].batch_invariant and len(choice["candidates"]) >= 2
    card = (result.package_dir / "README.md").read_text(encoding="utf8")
    assert "## Runtime" in card and f"`{choice['form']}`" in card and "| chosen |" in card
    assert all(f"`{row['form']}`" in card for row in choice["candidates"])
