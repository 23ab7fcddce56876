"""The model card of a packaged pipeline: every figure is read from a file the
workflow wrote (`spacy evaluate` metrics, the benchmark JSON, the pipeline's
meta.json and config.cfg) or measured here (parameters, size on disk); what is
missing reads "not measured"."""

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, Iterator, List, Mapping, Optional, Tuple

import srsly
from spacy.language import Language

from ..about import __title__, __version__
from ..encoder.transformer import count_parameters, find_transformer, hf_model
from ..util.disk_size import size_on_disk

NOT_MEASURED = "not measured"
MTL_URL = "https://github.com/cambridgeltl/MTL-Bioinformatics-2016"
MTL_LICENSE = "CC BY 4.0 (MTL-Bioinformatics-2016 IOB conversion)"
# As the project's brief cites it; no fields added that we could not check.
CITATION = (
    "Hu, Geng, Deng, Duan. FastBioNER (dynamic knowledge distillation for biomedical NER). "
    "J. Tsinghua Univ. (Sci. & Tech.) 2021, 61(9):936-942."
)


@dataclass(frozen=True)
class CorpusInfo:
    """A training corpus as the model card and meta.json `sources` name it."""

    name: str
    url: str
    license: str
    reference: str


_BC5CDR_REF = (
    "Li et al. BioCreative V CDR task corpus: a resource for chemical disease relation extraction. Database 2016:baw068"
)
CORPORA: Dict[str, CorpusInfo] = {
    "NCBI-disease": CorpusInfo(
        "NCBI disease corpus",
        MTL_URL,
        MTL_LICENSE,
        "Dogan, Leaman, Lu. NCBI disease corpus: a resource for disease name "
        "recognition and concept normalization. J Biomed Inform 2014;47:1-10",
    ),
    "BC5CDR-chem": CorpusInfo("BC5CDR, chemicals", MTL_URL, MTL_LICENSE, _BC5CDR_REF),
    "BC5CDR-disease": CorpusInfo("BC5CDR, diseases", MTL_URL, MTL_LICENSE, _BC5CDR_REF),
    "BC5CDR": CorpusInfo("BC5CDR, chemicals and diseases", MTL_URL, MTL_LICENSE, _BC5CDR_REF),
    "BC4CHEMD": CorpusInfo(
        "BC4CHEMD (CHEMDNER)",
        MTL_URL,
        MTL_LICENSE,
        "Krallinger et al. The CHEMDNER corpus of chemicals and drugs and its "
        "annotation principles. J Cheminform 2015;7(Suppl 1):S2",
    ),
}


def read_scores(path: Optional[Path]) -> Optional[Dict[str, Any]]:
    """The NER scores of a `spacy evaluate --output` JSON file.

    path (Optional[Path]): The file.
    RETURNS (Optional[Dict[str, Any]]): ents_p/r/f, ents_per_type and speed,
        or None when the file is absent.
    """
    if path is None or not Path(path).is_file():
        return None
    data = srsly.read_json(path)
    if not isinstance(data, dict) or "ents_f" not in data:
        found = sorted(data) if isinstance(data, dict) else type(data).__name__
        raise ValueError(f"{path}: expected `spacy evaluate` output with ents_p/r/f, found {found}")
    keys = ("ents_p", "ents_r", "ents_f", "ents_per_type", "speed")
    return {key: data[key] for key in keys if data.get(key) is not None}


def read_benchmark_speed(path: Optional[Path], model_dir: Optional[Path]) -> Optional[Dict[str, Any]]:
    """A model's words/sec in the benchmark JSON (`spacy fastbioner benchmark`),
    from the entry whose "path" is the model's folder. An entry of another
    folder never stands in for it, whatever its name.

    path (Optional[Path]): The benchmark.json.
    model_dir (Optional[Path]): The model's folder.
    RETURNS (Optional[Dict[str, Any]]): {"median": float, "ci95": [lo, hi]},
        or None when the file, the folder or its entry is absent.
    """
    if path is None or model_dir is None or not Path(path).is_file():
        return None
    target = Path(model_dir).resolve()
    for entry in srsly.read_json(path).get("models", []):
        if not entry.get("path") or Path(entry["path"]).resolve() != target:
            continue
        wps = (entry.get("speed") or {}).get("words_per_sec")
        if isinstance(wps, dict) and isinstance(wps.get("median"), (int, float)):
            return wps
    return None


def flatten_block(block: Mapping[str, Any], prefix: str = "") -> Iterator[Tuple[str, Any]]:
    """Dotted (key, value) pairs of a config block; a registered function is
    shown by its name, e.g. ("step", "spacy_fastbioner.distill_step.v1")."""
    for key, value in block.items():
        if key.startswith("@"):
            yield prefix.rstrip(".") or key, value
        elif isinstance(value, Mapping):
            yield from flatten_block(value, f"{prefix}{key}.")
        else:
            yield f"{prefix}{key}", value


def _config(nlp: Language) -> Mapping[str, Any]:
    """The pipeline's config with its variables filled in, where they can be."""
    try:
        return nlp.config.interpolate()
    except Exception:  # a variable that cannot be filled in: the raw config
        return nlp.config


def base_transformer(nlp: Language) -> str:
    """The `name` the transformer was initialised from (hub name or folder)."""
    trf = find_transformer(nlp)
    return str(_config(nlp)["components"][trf.name].get("model", {}).get("name", NOT_MEASURED))


def how_made_settings(nlp: Language, role: str) -> List[Tuple[str, str]]:
    """A student's distillation settings (config.cfg [distillation]), or a
    teacher's fine-tuning settings (part of [training]), as (key, value)."""
    config = _config(nlp)
    if role == "student":
        block, skip = config.get("distillation") or {}, {"teacher"}
    else:
        block = config.get("training") or {}
        skip = {
            "logger",
            "score_weights",
            "before_to_disk",
            "before_update",
            "annotating_components",
            "frozen_components",
            "train_corpus",
            "dev_corpus",
            "gpu_allocator",
            "seed",
        }
    pairs = sorted(flatten_block({k: v for k, v in block.items() if k not in skip}))
    return [(key, f"`{value}`") for key, value in pairs]


def _pct(value: Any) -> str:
    return f"{100 * value:.2f}" if isinstance(value, (int, float)) else NOT_MEASURED


def _count(value: Any, fmt: str = "{:,.0f}") -> str:
    return fmt.format(value) if isinstance(value, (int, float)) else NOT_MEASURED


def _ratio(ours: Any, theirs: Any) -> str:
    if isinstance(ours, (int, float)) and isinstance(theirs, (int, float)) and theirs:
        return f"{ours / theirs:.2f}x"
    return NOT_MEASURED


def _wps(speed: Optional[Dict[str, Any]]) -> str:
    if not speed:
        return NOT_MEASURED
    low, high = (speed.get("ci95") or [None, None])[:2]
    interval = f" ({low:,.0f}-{high:,.0f})" if isinstance(low, (int, float)) and isinstance(high, (int, float)) else ""
    return f"{speed['median']:,.0f}{interval}"


SOURCE_KINDS = {
    "pubtator": "gold annotations of PubTator files",
    "mesh": "NLM MeSH XML",
    "ctd": "CTD vocabulary (MEDIC / chemicals)",
}


def linker_info(nlp: Language) -> Optional[Dict[str, Any]]:
    """The pipeline's `fastbioner_linker` and its KB, for the meta and the card: None without one.

    RETURNS (Optional[Dict[str, Any]]): name, threshold, ranker (fitted or not), concepts,
        names, names per type, and the KB's sources ({"kind", "file", "names"}).
    """
    from ..pipeline.linker import FastBioLinker

    for name, pipe in nlp.pipeline:
        if isinstance(pipe, FastBioLinker):
            kb = pipe.kb
            kb.build()
            return {
                "component": name,
                "threshold": pipe.threshold,
                "ranker": bool(kb.ranker),
                "concepts": kb.get_size_entities(),
                "names": kb.get_size_aliases(),
                "types": kb.types,
                "sources": [dict(source) for source in kb.sources],
            }
    return None


def card_context(
    nlp: Language,
    meta: Dict[str, Any],
    *,
    corpus: str,
    role: str,
    model_dir: Path,
    teacher_package: str,
    scores: Optional[Dict[str, Any]],
    teacher_scores: Optional[Dict[str, Any]] = None,
    teacher_model_dir: Optional[Path] = None,
    benchmark_path: Optional[Path] = None,
    linking_paths: Optional[List[Path]] = None,
) -> Dict[str, Any]:
    """Everything the model card template shows, as formatted strings.

    nlp (Language): The packaged pipeline.
    meta (Dict[str, Any]): Its package meta.json.
    corpus (str): The corpus, e.g. "NCBI-disease".
    role (str): "student" or "teacher"; a student's card compares it with
        the teacher.
    model_dir (Path): The pipeline's folder (size, benchmark entry).
    teacher_package (str): The teacher's package name.
    scores (Optional[Dict[str, Any]]): `read_scores` of the test set.
    teacher_scores (Optional[Dict[str, Any]]): The teacher's.
    teacher_model_dir (Optional[Path]): The teacher's folder.
    benchmark_path (Optional[Path]): The benchmark JSON.
    linking_paths (Optional[List[Path]]): `evaluate-linking` outputs, for the linker's scores.
    RETURNS (Dict[str, Any]): The template's variables.
    """
    made = dict(nlp.meta.get("fastbioner") or {})
    params = count_parameters(nlp)
    rows: List[Tuple[str, Any, Any, Any, Any]] = [
        (
            f"this model ({role})",
            scores,
            read_benchmark_speed(benchmark_path, model_dir),
            params,
            size_on_disk(model_dir),
        ),
    ]
    if role == "student":
        rows.append(
            (
                "teacher",
                teacher_scores,
                read_benchmark_speed(benchmark_path, teacher_model_dir),
                made.get("teacher_parameters"),
                size_on_disk(teacher_model_dir),
            )
        )
    accuracy = [
        {
            "model": label,
            "p": _pct((s or {}).get("ents_p")),
            "r": _pct((s or {}).get("ents_r")),
            "f": _pct((s or {}).get("ents_f")),
        }
        for label, s, *_ in rows
    ]
    ours_types = (scores or {}).get("ents_per_type") or {}
    theirs_types = (teacher_scores or {}).get("ents_per_type") or {}
    per_type = [
        {
            "label": label,
            "p": _pct(ours_types.get(label, {}).get("p")),
            "r": _pct(ours_types.get(label, {}).get("r")),
            "f": _pct(ours_types.get(label, {}).get("f")),
            "teacher_f": _pct(theirs_types.get(label, {}).get("f")),
        }
        for label in sorted(set(ours_types) | set(theirs_types))
    ]
    efficiency = [
        {
            "model": label,
            "wps": _wps(wps),
            "evaluate_wps": _count((s or {}).get("speed")),
            "transformer_params": _count((p or {}).get("transformer")),
            "total_params": _count((p or {}).get("total")),
            "size": _count(size / 2**20 if size is not None else None, "{:,.1f} MiB"),
        }
        for label, s, wps, p, size in rows
    ]
    comparison: Dict[str, str] = {}
    if role == "student":
        (_, _, ours_wps, _, ours_size), (_, _, theirs_wps, theirs_p, theirs_size) = rows
        comparison = {
            "wps": _ratio((ours_wps or {}).get("median"), (theirs_wps or {}).get("median")),
            "params": _ratio(params["total"], (theirs_p or {}).get("total")),
            "size": _ratio(ours_size, theirs_size),
        }
    return {
        "full_name": f"{meta['lang']}_{meta['name']}",
        "meta": meta,
        "corpus": corpus,
        "corpus_info": CORPORA.get(corpus),
        "role": role,
        "labels": sorted({label for labels in meta.get("labels", {}).values() for label in labels}),
        "accuracy": accuracy,
        "per_type": per_type,
        "efficiency": efficiency,
        "comparison": comparison,
        "benchmark_found": benchmark_path is not None and Path(benchmark_path).is_file(),
        "base_transformer": base_transformer(nlp),
        "layers": made,
        "n_layers": int(hf_model(find_transformer(nlp)).config.num_hidden_layers),
        "settings": how_made_settings(nlp, role),
        "teacher_package": teacher_package,
        "citation": CITATION,
        "plugin": f"{__title__} {__version__}",
        "linker": linker_info(nlp),
        "runtime_choice": runtime_choice_rows((meta.get("fastbioner") or {}).get("runtime_choice")),
        "source_kinds": SOURCE_KINDS,
        "linking": read_linking(linking_paths or []),
    }


def runtime_choice_rows(choice: Optional[Mapping[str, Any]]) -> Optional[Dict[str, Any]]:
    """`export --runtime auto`'s choice for the card: the form, why, the CPU class it was measured
    on, and each candidate's words/s, dev F and why it was not kept; None without a choice."""
    if not choice:
        return None
    rows = [
        {
            "form": row["form"],
            "wps": _count(row.get("words_per_second")),
            "f": f"{row['f']:.2f}" if isinstance(row.get("f"), (int, float)) else NOT_MEASURED,
            "kept": "chosen" if row["form"] == choice["form"] else (row.get("why") or "slower"),
        }
        for row in choice.get("candidates", [])
    ]
    return {"form": choice["form"], "reason": choice.get("reason", ""), "cpu": choice.get("cpu_class"), "rows": rows}


def read_linking(paths: List[Path]) -> List[Dict[str, str]]:
    """Rows of the card's normalisation table from `evaluate-linking --output` files: doc-level
    (document, identifier) pairs, one row per file, beside the exact-match baseline and the
    ceiling that the KB allows.

    paths (List[Path]): The files.
    RETURNS (List[Dict[str, str]]): name, spans (gold or predicted), pairs, P, R, F, baseline
        F, ceiling F and accuracy@1 on mentions whose concept is in the KB.
    """
    rows = []
    for path in paths:
        data = srsly.read_json(path)
        doc_level = data["doc_level"]
        linker = doc_level["linker"]
        rows.append(
            {
                "name": Path(path).stem,
                "spans": "gold" if not data["settings"].get("model") else "predicted",
                "pairs": _count(linker["n_gold"]),
                "p": _percent(linker["p"]),
                "r": _percent(linker["r"]),
                "f": _percent(linker["f"]),
                "baseline_f": _percent(doc_level["baseline"]["f"]),
                "ceiling_f": _percent(doc_level["ceiling"]["f"]),
                "accuracy_in_kb": _percent(data["mention_level"].get("accuracy_at_1_in_kb")),
            }
        )
    return rows


def _percent(value: Any) -> str:
    """A figure already in percent, as evaluate-linking writes them."""
    return f"{value:.2f}" if isinstance(value, (int, float)) else NOT_MEASURED


def render_card(context: Dict[str, Any], template_path: Path) -> str:
    """Render the model card, a Jinja2 template, with `card_context`'s output."""
    from jinja2 import Environment, FileSystemLoader, StrictUndefined

    env = Environment(
        loader=FileSystemLoader(str(template_path.parent)),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    return env.get_template(template_path.name).render(**context)
