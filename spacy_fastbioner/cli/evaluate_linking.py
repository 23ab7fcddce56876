"""`spacy fastbioner evaluate-linking DEV --train FILE ...`: concept identifiers scored as the
field reports them (document-level concept P/R/F, mention-level accuracy@1 and recall@10)."""

import json
import shlex
import sys
from pathlib import Path
from typing import Any, Dict, List, Optional

from spacy.cli._util import Arg, Opt
from wasabi import msg

from ._util import fastbioner_cli
from .evaluate_raw import parse_type_map


@fastbioner_cli.command("evaluate-linking")
def evaluate_linking_cli(
    # fmt: off
    dev: Path = Arg(..., help="PubTator dev file with concept ids", exists=True, dir_okay=False),
    train: List[Path] = Opt(
        [],
        "--train",
        "-r",
        help="PubTator training file: the KB (if no --kb) and the exact-match baseline (repeat for several)",
    ),
    kb_path: Optional[Path] = Opt(
        None, "--kb", "-k", help="KB folder from build-kb (default: built from --train)", exists=True, file_okay=False
    ),
    labels: str = Opt("Disease", "--labels", "-l", help="Comma-separated mention labels to score, e.g. Chemical"),
    model: Optional[str] = Opt(
        None, "--model", "-M", help="Pipeline with an NER: also score end to end on raw text, its entities linked"
    ),
    threshold: Optional[float] = Opt(None, "--threshold", "-T", help="Least link score (default: the factory's)"),
    type_map: Optional[str] = Opt(
        None, "--type-map", "-t", help="PubTator label renames (default: NCBI-disease's four types to Disease)"
    ),
    output: Optional[Path] = Opt(None, "--output", "-o", help="Output JSON file", dir_okay=False),
    # fmt: on
) -> None:
    """Score concept identifiers on the gold spans of a PubTator dev file:
    document-level (document, concept) P/R/F beside the recall ceiling of the
    KB and the exact-match baseline, and mention-level accuracy@1 and recall@10,
    NIL counted. With --model, also end to end with the pipeline's entities."""
    from ..corpora.readers import CorpusError, read_pubtator
    from ..kb import KBFormatError, KBSourceError

    renames = parse_type_map(type_map)
    if not train and kb_path is None:
        msg.fail("Expected --train files or a --kb folder", exits=1)
    try:
        documents = read_pubtator(dev, renames)
        train_docs = [doc for path in train for doc in read_pubtator(path, renames)]
    except CorpusError as err:
        msg.fail("Cannot read the PubTator data", str(err), exits=1)
    label_set = {label.strip() for label in labels.split(",") if label.strip()}
    try:
        scores = run_evaluation(documents, train, train_docs, label_set, kb_path, model, threshold, renames)
    except (KBFormatError, KBSourceError, OSError, ValueError) as err:
        msg.fail("Cannot evaluate", str(err), exits=1)
    # The arguments after the command's name, however spaCy's CLI was started.
    args = sys.argv[sys.argv.index("evaluate-linking") + 1 :] if "evaluate-linking" in sys.argv else sys.argv[1:]
    scores["command"] = "python -m spacy fastbioner evaluate-linking " + " ".join(shlex.quote(a) for a in args)
    print_linking_scores(scores)
    if output is not None:
        output.parent.mkdir(parents=True, exist_ok=True)
        output.write_text(json.dumps(scores, indent=2) + "\n", encoding="utf8")
        msg.good(f"Saved scores to {output}")


def run_evaluation(
    documents: List[Any],
    train: List[Path],
    train_docs: List[Any],
    labels: set,
    kb_path: Optional[Path],
    model: Optional[str],
    threshold: Optional[float],
    type_map: Optional[Dict[str, str]],
) -> Dict[str, Any]:
    """Build or load the KB, link the gold spans (and the model's entities), and score."""
    import spacy

    from ..evaluation.linking import build_baseline, evaluate_end_to_end, evaluate_linking
    from ..kb import ConceptKB, build_kb
    from ..loading import load_pipeline
    from ..pipeline.linker import FastBioLinker

    kb = ConceptKB().from_disk(kb_path) if kb_path is not None else build_kb(pubtator=train, type_map=type_map)
    nlp = load_pipeline(model) if model else spacy.blank("en", config=_BIO_TOKENIZER)
    config = {} if threshold is None else {"threshold": threshold}
    if "fastbioner_linker" in nlp.pipe_names:
        linker = nlp.get_pipe("fastbioner_linker")
    else:
        linker = nlp.add_pipe("fastbioner_linker", config=config)
    assert isinstance(linker, FastBioLinker)
    linker.set_kb(kb)
    baseline = build_baseline(train_docs, labels) if train_docs else None
    scores = evaluate_linking(nlp, linker, documents, labels, baseline=baseline)
    if model:
        scores["end_to_end"] = evaluate_end_to_end(nlp, documents, labels)
    scores["settings"] = {
        "labels": sorted(labels),
        "train": [str(p) for p in train],
        "kb": str(kb_path) if kb_path else None,
        "model": model,
        "linker": dict(linker.cfg),
        "kb_size": {"concepts": kb.get_size_entities(), "names": kb.get_size_aliases(), "ranker": bool(kb.ranker)},
    }
    return scores


_BIO_TOKENIZER = {"nlp": {"tokenizer": {"@tokenizers": "spacy_fastbioner.BioTokenizer.v1"}}}


def print_linking_scores(scores: Dict[str, Any]) -> None:
    """Print the document-level table and the mention-level figures."""
    doc_level = scores["doc_level"]
    rows = [
        [name, f"{prf['p']:.1f}", f"{prf['r']:.1f}", f"{prf['f']:.1f}"]
        for name, prf in (
            ("linker, gold spans", doc_level["linker"]),
            ("exact-match baseline", doc_level.get("baseline")),
        )
        if prf is not None
    ]
    if "end_to_end" in scores:
        e2e = scores["end_to_end"]
        rows.append(["linker, predicted spans", f"{e2e['p']:.1f}", f"{e2e['r']:.1f}", f"{e2e['f']:.1f}"])
    ceiling = doc_level["ceiling"]
    rows.append(["ceiling (concept in KB)", "100.0", f"{ceiling['r']:.1f}", f"{ceiling['f']:.1f}"])
    unseen = scores["unseen_concepts"]
    msg.divider(f"Document-level concepts ({unseen['n_pairs']} pairs, {scores['n_docs']} documents)")
    msg.table(rows, header=("", "P", "R", "F"), aligns=("l", "r", "r", "r"), divider=True)
    mention = scores["mention_level"]
    msg.divider(f"Mentions, gold spans ({scores['n_mentions']})")
    msg.table(
        [
            ["accuracy@1 (NIL counted)", f"{mention['accuracy_at_1']:.1f}"],
            [f"accuracy@1, concept in KB ({mention['n_in_kb']})", f"{mention['accuracy_at_1_in_kb']:.1f}"],
            ["recall@10", f"{mention['recall_at_10']:.1f}"],
            ["dev concepts the KB never saw", f"{unseen['n_unseen']} of {unseen['n_dev_concepts']}"],
        ],
        aligns=("l", "r"),
    )
