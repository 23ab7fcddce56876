"""Choose the linker's default threshold on training data alone: cross-validation over the
documents of the training files (a KB and its ranker from the other folds), document-level
concept F on the held-out fold with gold spans, at each threshold.

    python project/scripts/linking_threshold.py --corpus ncbi=NCBItrainset_corpus.txt:Disease \\
        --corpus bc5cdr-chem=CDR_TrainingSet.PubTator.txt:Chemical --output results/linking/threshold-cv.json
"""

import argparse
import json
import random
import sys
from pathlib import Path
from typing import Any, Dict, List

import spacy

from spacy_fastbioner.corpora.readers import PubTatorDocument, read_pubtator
from spacy_fastbioner.evaluation.linking import evaluate_linking
from spacy_fastbioner.kb import ConceptKB
from spacy_fastbioner.kb.build import fit_document_ranker
from spacy_fastbioner.kb.sources import pubtator_names
from spacy_fastbioner.pipeline.linker import FastBioLinker

THRESHOLDS = (0.2, 0.25, 0.3, 0.35, 0.4, 0.45, 0.5)


def cross_validate(documents: List[PubTatorDocument], labels: set, n_folds: int, seed: int) -> Dict[str, Any]:
    nlp = spacy.blank("en", config={"nlp": {"tokenizer": {"@tokenizers": "spacy_fastbioner.BioTokenizer.v1"}}})
    order = list(range(len(documents)))
    random.Random(seed).shuffle(order)
    folds = [order[f::n_folds] for f in range(n_folds)]
    counts = {t: [0, 0, 0] for t in THRESHOLDS}  # tp, n_pred, n_gold summed over folds
    for held in folds:
        rest = [documents[i] for i in order if i not in set(held)]
        kb = ConceptKB()
        kb.add_names(pubtator_names(rest))
        kb.build()
        kb.ranker = fit_document_ranker(rest)
        for threshold in THRESHOLDS:
            linker = FastBioLinker(nlp.vocab, threshold=threshold)
            linker.set_kb(kb)
            prf = evaluate_linking(nlp, linker, [documents[i] for i in held], labels)["doc_level"]["linker"]
            for j, key in enumerate(("tp", "n_pred", "n_gold")):
                counts[threshold][j] += prf[key]
    scores = {}
    for threshold, (tp, n_pred, n_gold) in counts.items():
        p, r = tp / max(n_pred, 1), tp / max(n_gold, 1)
        scores[str(threshold)] = {"p": 100 * p, "r": 100 * r, "f": 200 * p * r / (p + r) if p + r else 0.0}
    best = max(scores, key=lambda t: scores[t]["f"])
    return {"n_docs": len(documents), "n_folds": n_folds, "by_threshold": scores, "best": float(best)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--corpus", action="append", required=True, help="NAME=PUBTATOR_FILE:LABEL[,LABEL]")
    parser.add_argument("--output", type=Path, required=True, help="Output JSON file")
    parser.add_argument("--folds", type=int, default=5, help="Folds of the cross-validation")
    parser.add_argument("--seed", type=int, default=0, help="Seed of the split into folds")
    args = parser.parse_args()
    report: Dict[str, Any] = {"command": "python " + " ".join(sys.argv), "thresholds": list(THRESHOLDS)}
    for item in args.corpus:
        name, _, rest = item.partition("=")
        path, _, labels = rest.rpartition(":")
        report[name] = cross_validate(read_pubtator(path), set(labels.split(",")), args.folds, args.seed)
        print(name, json.dumps(report[name]["by_threshold"]), "best", report[name]["best"], flush=True)
    # The linker's one default (RANKED_THRESHOLD): the best mean F over the corpora.
    names = [item.partition("=")[0] for item in args.corpus]
    report["mean_f"] = {
        str(t): sum(report[n]["by_threshold"][str(t)]["f"] for n in names) / len(names) for t in THRESHOLDS
    }
    report["best_mean"] = float(max(report["mean_f"], key=lambda t: report["mean_f"][t]))
    print("mean F", json.dumps(report["mean_f"]), "best", report["best_mean"], flush=True)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(report, indent=2) + "\n", encoding="utf8")


if __name__ == "__main__":
    main()
