"""Installable model packages of trained pipelines.

`package_model` names the package after the corpus (`en_fastbioner_ncbi_disease`,
with a `_teacher` suffix for the teacher), writes its meta.json and model card
(`model_card.py`), lets `spacy package` lay out the package, and builds the
wheel with no build isolation and no index, so that nothing is downloaded.
"""

import os
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Tuple, cast

import srsly
from spacy.language import Language
from spacy.util import get_minor_version_range, get_package_version

from ..about import __title__, __version__
from ..loading import load_pipeline
from .model_card import CORPORA, NOT_MEASURED, base_transformer, card_context, linker_info, read_scores, render_card

ROLES = ("student", "teacher")
# Runtimes a package can be exported to (`--runtime`); None packages the PyTorch pipeline.
PACKAGE_RUNTIMES = ("onnx", "openvino", "auto")
# The package's __init__.py: spaCy's template, with `load()` limiting the
# torch threads of forked `nlp.pipe(n_process=...)` workers.
PACKAGE_INIT = """from pathlib import Path

from spacy.util import get_model_meta, load_model_from_init_py

__version__ = get_model_meta(Path(__file__).parent)["version"]


def load(**overrides):
    from spacy_fastbioner.util.threads import limit_torch_threads_in_children

    limit_torch_threads_in_children()
    return load_model_from_init_py(__file__, **overrides)
"""


@dataclass(frozen=True)
class PackageResult:
    """What `package_model` built."""

    name: str
    version: str
    package_dir: Path
    wheel: Path
    meta: Dict[str, Any]


def corpus_slug(corpus: str) -> str:
    """The corpus as part of a Python name: "NCBI-disease" -> "ncbi_disease"."""
    slug = re.sub(r"[^0-9a-z]+", "_", corpus.lower()).strip("_")
    if not slug:
        raise ValueError(f"cannot make a package name from the corpus {corpus!r}")
    return slug


def model_name(corpus: str, role: str = "student", runtime: Optional[str] = None) -> str:
    """The meta.json name, to which spaCy adds the language: for NCBI-disease,
    "fastbioner_ncbi_disease", "fastbioner_ncbi_disease_teacher", or with
    runtime="onnx" "fastbioner_ncbi_disease_onnx"."""
    if role not in ROLES:
        raise ValueError(f"unknown role {role!r}: expected one of {ROLES}")
    if runtime not in (None,) + PACKAGE_RUNTIMES:
        raise ValueError(f"unknown runtime {runtime!r}: expected one of {PACKAGE_RUNTIMES}")
    name = f"fastbioner_{corpus_slug(corpus)}" + ("_teacher" if role == "teacher" else "")
    return f"{name}_{runtime}" if runtime else name


def requirements(runtime: Optional[str] = None) -> List[str]:
    """The package's requirements: the plugin, whose registered functions the
    config names, and spacy-transformers, each within the minor version that
    packaged it (`spacy package`'s convention; the plugin itself requires
    spacy-transformers>=1.4,<1.5); and the inference runtime, if any (ONNX
    Runtime for runtime="onnx", OpenVINO for "openvino")."""
    trf_version = get_package_version("spacy-transformers")
    if trf_version is None:
        raise ValueError("spacy-transformers is not installed: cannot package a transformer pipeline")
    reqs = [
        f"{__title__}{get_minor_version_range(__version__)}",
        f"spacy-transformers{get_minor_version_range(trf_version)}",
    ]
    if runtime is not None:
        from ..runtime import runtime_requirements

        reqs.extend(runtime_requirements(runtime).values())
    return reqs


def make_meta(
    nlp: Language,
    base: Mapping[str, Any],
    *,
    corpus: str,
    role: str,
    version: str,
    scores: Optional[Dict[str, Any]],
    runtime: Optional[str] = None,
) -> Dict[str, Any]:
    """The meta.json for `spacy package`.

    nlp (Language): The pipeline.
    base (Mapping[str, Any]): The template's fields (description, author,
        email, url, license); {corpus}, {role} and {labels} in strings are
        filled in.
    corpus (str): The corpus.
    role (str): "student" or "teacher".
    version (str): The package version.
    scores (Optional[Dict[str, Any]]): Test-set scores, for "performance".
    runtime (Optional[str]): The inference runtime the package's transformer
        is exported to ("onnx"), which names it and adds its requirement.
    RETURNS (Dict[str, Any]): The meta: the pipeline's own, the template's
        fields, name, version, requirements, sources and performance.
    """
    labels = sorted({label for labels in nlp.meta.get("labels", {}).values() for label in labels})
    fields = {"corpus": corpus, "role": role, "labels": ", ".join(labels)}
    meta = {key: value for key, value in nlp.meta.items() if key != "performance"}
    meta.update({key: value.format(**fields) if isinstance(value, str) else value for key, value in base.items()})
    info = CORPORA.get(corpus)
    corpus_source = (
        {"name": corpus}
        if info is None
        else {"name": info.name, "url": info.url, "license": info.license, "author": info.reference}
    )
    meta.update(
        name=model_name(corpus, role, runtime),
        version=version,
        requirements=requirements(runtime),
        sources=[corpus_source, {"name": f"Base transformer: {base_transformer(nlp)}"}],
        performance=dict(scores or {}),
    )
    meta["fastbioner"] = {
        **dict(nlp.meta.get("fastbioner") or {}),
        "role": role,
        "corpus": corpus,
        "performance_on": f"{corpus} test set" if scores else NOT_MEASURED,
        "plugin_version": __version__,
    }
    if runtime is not None:
        meta["fastbioner"]["runtime"] = runtime
        meta["fastbioner"]["quantized"] = "qint8"
    linker = linker_info(nlp)
    if linker is not None:
        meta["fastbioner"]["linker"] = linker
        meta["sources"].extend({"name": f"Knowledge base: {s['kind']} {s['file']}"} for s in linker["sources"])
    return meta


def _export(
    nlp: Language,
    runtime: Optional[str],
    calibration: Optional[Path],
    n_calibration: Optional[int],
    dev: Optional[Path],
) -> Tuple[Optional[Language], Optional[Dict[str, Any]]]:
    """The pipeline exported to its runtime (None for PyTorch), and `auto`'s choice (None otherwise)."""
    if runtime is None:
        return None, None
    from ..benchmark.data import load_gold_docs
    from ..runtime import N_CALIBRATION, export_pipeline

    if runtime == "auto":
        from ..runtime.auto import export_auto

        train = load_gold_docs(cast(Path, calibration), nlp.vocab)[: n_calibration or max(N_CALIBRATION.values())]
        gold = load_gold_docs(dev, nlp.vocab) if dev is not None else None
        return export_auto(nlp, calibration=train, dev=gold)
    docs = None
    if calibration is not None:
        docs = load_gold_docs(calibration, nlp.vocab)[: n_calibration or N_CALIBRATION[runtime]]
    return export_pipeline(nlp, runtime=runtime, int8=True, calibration=docs), None


def add_linker(nlp: Language, kb_path: Path, name: str = "fastbioner_linker") -> None:
    """Add a `fastbioner_linker` with the KB saved at `kb_path` to the end of `nlp`, in place."""
    from ..kb import ConceptKB

    if name in nlp.pipe_names:
        raise ValueError(f"the pipeline already has a component {name!r}")
    kb = ConceptKB().from_disk(kb_path)
    nlp.add_pipe("fastbioner_linker", name=name).set_kb(kb)  # type: ignore[attr-defined]


def build_wheel(package_dir: Path, name: str, version: str) -> Path:
    """Build the wheel of a package folder made by `spacy package`. spaCy's own
    `--build wheel` runs `python -m build`, whose isolated build environment
    downloads setuptools; here the build runs without isolation or an index.

    package_dir (Path): The package folder (with setup.py).
    name (str): The package name, e.g. "en_fastbioner_ncbi_disease".
    version (str): Its version.
    RETURNS (Path): The wheel, in package_dir / "dist".
    """
    dist = package_dir / "dist"
    shutil.rmtree(package_dir / "build", ignore_errors=True)  # stale files of an earlier build
    env = {**os.environ, "PIP_NO_INDEX": "1"}
    if get_package_version("build") is not None:
        cmd = [sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", str(dist), str(package_dir)]
    else:
        cmd = [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "--no-index",
            "--wheel-dir",
            str(dist),
            str(package_dir),
        ]
    result = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"building the wheel of {package_dir} failed ({' '.join(cmd)}):\n{result.stderr[-4000:]}")
    wheels = sorted(dist.glob(f"{re.sub('_+', '_', name)}-{version}-*.whl"))
    if not wheels:
        raise RuntimeError(f"no wheel of {name} {version} in {dist} after: {' '.join(cmd)}")
    return wheels[-1]


def package_model(
    model_dir: Path,
    output_dir: Path,
    *,
    corpus: str,
    version: str,
    meta_template: Path,
    card_template: Path,
    role: str = "student",
    metrics_path: Optional[Path] = None,
    teacher_metrics_path: Optional[Path] = None,
    teacher_model_dir: Optional[Path] = None,
    benchmark_path: Optional[Path] = None,
    runtime: Optional[str] = None,
    calibration: Optional[Path] = None,
    n_calibration: Optional[int] = None,
    linking_paths: Optional[List[Path]] = None,
    kb_path: Optional[Path] = None,
    dev: Optional[Path] = None,
) -> PackageResult:
    """Package a trained pipeline as an installable wheel with a model card.
    With a runtime, the packaged pipeline is the int8 export of the trained
    one (`spacy fastbioner export`): the card describes the trained pipeline.

    model_dir (Path): The pipeline, e.g. training/NCBI-disease/student/model-best.
    output_dir (Path): Where `spacy package` makes the package folder.
    corpus (str): The corpus, which names the package.
    version (str): The package version.
    meta_template (Path): JSON with description, author, email, url, license.
    card_template (Path): The Jinja2 model card.
    role (str): "student" or "teacher" (the name gets a `_teacher` suffix).
    metrics_path (Optional[Path]): `spacy evaluate` output on the test set.
    teacher_metrics_path (Optional[Path]): The teacher's, for a student's card.
    teacher_model_dir (Optional[Path]): The teacher pipeline, for its size.
    benchmark_path (Optional[Path]): The benchmark JSON, for words/sec.
    runtime (Optional[str]): Export the transformer to this runtime ("onnx"
        or "openvino", int8; or "auto", the fastest batch-invariant form for
        this CPU, `export --runtime auto`) and package that; the package is
        named with a `_<runtime>` suffix and requires the runtime.
    calibration (Optional[Path]): With a runtime: training docs for the int8
        export (`export --calibration`; OpenVINO needs them).
    n_calibration (Optional[int]): How many of them (the first ones); the
        runtime's default (`runtime.N_CALIBRATION`) when None.
    linking_paths (Optional[List[Path]]): `evaluate-linking --output` files, for the card's
        normalisation scores (a pipeline with `fastbioner_linker`).
    kb_path (Optional[Path]): A KB from `build-kb`: the package gets a `fastbioner_linker` with
        it at the end of its pipeline (as `spacy fastbioner add-linker` adds one).
    dev (Optional[Path]): With runtime="auto": gold docs to score each candidate form on.
    RETURNS (PackageResult): The package folder, wheel and meta.
    """
    from spacy.cli.package import package as spacy_package

    model_dir, output_dir = Path(model_dir), Path(output_dir)
    if not (model_dir / "config.cfg").is_file():
        raise ValueError(f"{model_dir}: not a spaCy pipeline (no config.cfg)")
    if calibration is not None and runtime is None:
        raise ValueError("calibration docs are for a package exported to a runtime (--runtime onnx or openvino)")
    if runtime == "auto" and calibration is None:
        raise ValueError("--runtime auto needs training docs (calibration) to calibrate and time the candidates on")
    nlp = load_pipeline(model_dir)
    if kb_path is not None:
        add_linker(nlp, kb_path)
    exported, choice = _export(nlp, runtime, calibration, n_calibration, dev)
    if choice is not None:
        runtime = str(choice["runtime"])
    name = model_name(corpus, role, runtime)
    scores = read_scores(metrics_path)
    meta = make_meta(
        nlp, srsly.read_json(meta_template), corpus=corpus, role=role, version=version, scores=scores, runtime=runtime
    )
    if exported is not None:
        made = exported.meta.get("fastbioner") or {}
        keys = ("runtime", "quantized", "batch_invariant", "packed", "runtime_choice")
        meta["fastbioner"].update({key: made[key] for key in keys if key in made})
    context = card_context(
        nlp,
        meta,
        corpus=corpus,
        role=role,
        model_dir=model_dir,
        teacher_package=f"{nlp.lang}_{model_name(corpus, 'teacher')}",
        scores=scores,
        teacher_scores=read_scores(teacher_metrics_path) if role == "student" else None,
        teacher_model_dir=teacher_model_dir,
        benchmark_path=benchmark_path,
        linking_paths=linking_paths,
    )
    readme = render_card(context, card_template)
    output_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        meta_path = Path(tmp) / "meta.json"
        srsly.write_json(meta_path, meta)
        source_dir = model_dir
        if exported is not None:
            source_dir = Path(tmp) / "exported"
            exported.to_disk(source_dir)
        elif kb_path is not None:
            source_dir = Path(tmp) / "linked"
            nlp.to_disk(source_dir)
        spacy_package(
            source_dir,
            output_dir,
            meta_path=meta_path,
            name=name,
            version=version,
            create_sdist=False,
            create_wheel=False,
            force=True,
            silent=True,
        )
    full_name = context["full_name"]
    package_dir = output_dir / f"{full_name}-{version}"
    (package_dir / full_name / "__init__.py").write_text(PACKAGE_INIT, encoding="utf8")
    licenses = "\n\n".join(
        f"{s['name']}: {s.get('license', 'licence: see its own model card')}\n{s.get('url', '')}".strip()
        for s in meta["sources"]
    )
    for folder in (package_dir, package_dir / full_name / f"{full_name}-{version}"):
        (folder / "README.md").write_text(readme, encoding="utf8")
        (folder / "LICENSES_SOURCES").write_text(licenses + "\n", encoding="utf8")
    wheel = build_wheel(package_dir, full_name, version)
    return PackageResult(full_name, version, package_dir, wheel, srsly.read_json(package_dir / "meta.json"))
