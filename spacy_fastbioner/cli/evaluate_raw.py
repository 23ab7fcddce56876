"""`spacy fastbioner evaluate-raw MODEL PUBTATOR_FILE`: entity P/R/F on raw text."""

import json
from pathlib import Path
from typing import Any, Dict, Optional

from spacy.cli._util import Arg, Opt, setup_gpu
from wasabi import msg

from ._util import fastbioner_cli


@fastbioner_cli.command("evaluate-raw")
def evaluate_raw_cli(
    # fmt: off
    model: str = Arg(..., help="Pipeline to evaluate: a package name or a path"),
    data_path: Path = Arg(..., help="PubTator file: 'PMID|t|title', 'PMID|a|abstract' and mention lines"),
    output: Optional[Path] = Opt(None, "--output", "-o", help="Output JSON file for the scores", dir_okay=False),
    type_map: Optional[str] = Opt(
        None,
        "--type-map",
        "-t",
        help="Label renames, e.g. 'SpecificDisease=Disease,Modifier=Disease'; 'X=' drops type X (default: NCBI-disease's four types to Disease)",
    ),
    batch_size: int = Opt(32, "--batch-size", "-b", help="Documents per batch of nlp.pipe"),
    use_gpu: int = Opt(-1, "--gpu-id", "-g", help="GPU ID or -1 for CPU"),
    compare: bool = Opt(
        False,
        "--compare",
        "-C",
        help="Also score the same documents at the token level (gold mentions moved to token boundaries), as `spacy evaluate` does",
    ),
    abbreviations: Optional[bool] = Opt(
        None,
        "--abbreviations/--no-abbreviations",
        help="Add (or remove) the fastbioner_abbreviations component before scoring (default: the pipeline as it is)",
    ),
    # fmt: on
) -> None:
    """Evaluate a pipeline on the raw title + abstract text of PubTator
    documents: predicted entities must match the gold character offsets
    exactly. Also counts the gold mentions that the pipeline's tokenizer
    makes unreachable."""
    from ..corpora.readers import CorpusError, read_pubtator
    from ..evaluation.raw import evaluate_raw, evaluate_token_level
    from ..loading import load_pipeline
    from ..pipeline.abbreviations import use_abbreviations

    if batch_size < 1:
        msg.fail(f"Invalid --batch-size {batch_size}: expected a positive integer", exits=1)
    renames = parse_type_map(type_map)
    try:
        documents = read_pubtator(data_path, renames)
    except CorpusError as err:
        msg.fail("Cannot read the evaluation data", str(err), exits=1)
    setup_gpu(use_gpu)
    try:
        nlp = load_pipeline(model)
    except (OSError, ValueError) as err:
        msg.fail(f"Cannot load the pipeline {model!r}", str(err), exits=1)
    if abbreviations is not None:
        use_abbreviations(nlp, abbreviations)
    scores = evaluate_raw(nlp, documents, batch_size=batch_size)
    if compare:
        scores["token_level"] = evaluate_token_level(nlp, data_path, type_map=renames, batch_size=batch_size)
    scores["pipeline"] = nlp.pipe_names
    print_scores(scores)
    if output is not None:
        output.parent.mkdir(parents=True, exist_ok=True)
        output.write_text(json.dumps(scores, indent=2) + "\n", encoding="utf8")
        msg.good(f"Saved scores to {output}")


def parse_type_map(value: Optional[str]) -> Optional[Dict[str, str]]:
    """Parse 'A=X,B=Y,C=' into {"A": "X", "B": "Y", "C": ""}; None stays None."""
    if value is None:
        return None
    renames: Dict[str, str] = {}
    for item in filter(None, (part.strip() for part in value.split(","))):
        source, sep, target = item.partition("=")
        if not sep or not source.strip():
            msg.fail(f"Invalid --type-map item {item!r}: expected 'TYPE=LABEL' or 'TYPE='", exits=1)
        renames[source.strip()] = target.strip()
    return renames


def print_scores(scores: Dict[str, Any]) -> None:
    """Print the overall scores (with the token-level ones if present) and a
    per-type table, as percentages."""
    token = scores.get("token_level")
    header = ["", "raw text"] + (["token level"] if token else [])
    rows = []
    for key, name in (("ents_p", "NER P"), ("ents_r", "NER R"), ("ents_f", "NER F")):
        rows.append([name, f"{100 * scores[key]:.2f}"] + ([f"{100 * (token[key] or 0):.2f}"] if token else []))
    rows.append(["Gold mentions", scores["n_gold"]] + ([token["n_gold"]] if token else []))
    rows.append(["Unreachable", scores["n_unreachable"]] + ([token["n_misaligned"]] if token else []))
    rows.append(["Max reachable R", f"{100 * scores['max_reachable_r']:.2f}"] + (["-"] if token else []))
    msg.divider(f"Raw-text evaluation ({scores['n_docs']} documents)")
    msg.table(rows, header=header, aligns=["l"] + ["r"] * (len(header) - 1), divider=True)
    per_type = [
        [label, f"{100 * prf['p']:.2f}", f"{100 * prf['r']:.2f}", f"{100 * prf['f']:.2f}"]
        for label, prf in scores["ents_per_type"].items()
    ]
    if per_type:
        msg.divider("Raw text, per type")
        msg.table(per_type, header=("", "P", "R", "F"), aligns=("l", "r", "r", "r"), divider=True)
