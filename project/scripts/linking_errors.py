"""List the linker's errors on the gold spans of a PubTator file, grouped into kinds, to see
what to fix (reading errors, never fitting anything on them: the KB comes from train only).

For each mention whose concepts are all in the KB and that is linked wrongly or left NIL: the
mention, its gold and predicted identifiers, the top candidates with their scores, and a kind:

- abbreviation: a short form (2-10 characters, no space), defined in the doc or not;
- composite: the gold identifier names several concepts ("A|B");
- doc_context: another mention of the same doc is linked (by the linker) to the gold concept;
- below_threshold: the gold concept is the top candidate but scores under the threshold;
- ranked_lower: the gold concept is among the candidates, but not first;
- not_found: the gold concept is not among the candidates.

    python project/scripts/linking_errors.py /work/shared/data/raw/NCBI-disease/NCBIdevelopset_corpus.txt \\
        --kb training/linking/kb-ncbi-disease --labels Disease [--limit 50] [--output errors.json]
"""

import argparse
import json
import sys
from collections import Counter
from pathlib import Path
from typing import Any, Dict, List

import spacy

from spacy_fastbioner.corpora.readers import read_pubtator
from spacy_fastbioner.evaluation.linking import _gold_spans, kb_concepts
from spacy_fastbioner.kb import ConceptKB
from spacy_fastbioner.kb.names import normalize, split_identifiers
from spacy_fastbioner.pipeline.abbreviations import is_short_form
from spacy_fastbioner.pipeline.linker import FastBioLinker

_BIO_TOKENIZER = {"nlp": {"tokenizer": {"@tokenizers": "spacy_fastbioner.BioTokenizer.v1"}}}


def error_kind(error: Dict[str, Any], doc_links: List[str], threshold: float) -> str:
    """The kind of an error (see the module docstring), the first that applies."""
    gold = set(error["gold"].split("|"))
    text = error["mention"]
    candidates = error["candidates"]
    if is_short_form(text) and " " not in text and not text.islower():
        return "abbreviation"
    if len(gold) > 1:
        return "composite"
    if any(set(split_identifiers(link)) == gold for link in doc_links):
        return "doc_context"
    ids = [set(split_identifiers(c["id"])) for c in candidates]
    if ids and ids[0] == gold:
        return "below_threshold" if candidates[0]["score"] < threshold else "other"
    if gold in ids:
        return "ranked_lower"
    return "not_found"


def collect_errors(path: Path, kb_path: Path, labels: set, n_show: int) -> Dict[str, Any]:
    nlp = spacy.blank("en", config=_BIO_TOKENIZER)
    linker = nlp.add_pipe("fastbioner_linker")
    assert isinstance(linker, FastBioLinker)
    linker.set_kb(ConceptKB().from_disk(kb_path))
    known = kb_concepts(linker.kb.entity_ids)
    errors: List[Dict[str, Any]] = []
    missed: List[Dict[str, Any]] = []  # reachable gold (document, concept) pairs not predicted
    spurious: List[Dict[str, Any]] = []  # predicted pairs not in the gold
    n_in_kb = 0
    for document in read_pubtator(path):
        doc = nlp.make_doc(document.text)
        spans, concepts, _ = _gold_spans(doc, document, labels)
        doc_links, doc_candidates = linker.link_with_candidates([doc], [spans])
        links = [kb_id for kb_id, _ in doc_links[0]]
        gold_ids = {c for _, concept in concepts for c in split_identifiers(concept)}
        pred_ids = {c for link in links for c in split_identifiers(link)}
        for concept in sorted((gold_ids - pred_ids) & known):
            mentions = [(t, links[j] or "NIL") for j, (t, g) in enumerate(concepts) if concept in g]
            missed.append({"pmid": document.pmid, "concept": concept, "mentions": mentions})
        for concept in sorted(pred_ids - gold_ids):
            mentions = [(t, g) for j, (t, g) in enumerate(concepts) if concept in split_identifiers(links[j])]
            spurious.append({"pmid": document.pmid, "concept": concept, "mentions": mentions})
        for i, ((text, concept), (kb_id, score), found) in enumerate(zip(concepts, doc_links[0], doc_candidates[0])):
            gold = split_identifiers(concept)
            if not gold or not set(gold) <= known:
                continue
            n_in_kb += 1
            if set(gold) == set(split_identifiers(kb_id)):
                continue
            error = {
                "pmid": document.pmid,
                "mention": text,
                "normal": normalize(text),
                "gold": "|".join(gold),
                "pred": kb_id or "NIL",
                "score": round(float(score), 3),
                "candidates": [
                    {
                        "id": c.entity_,
                        "alias": c.alias_,
                        "sim": round(float(c.similarity), 3),
                        "score": round(float(c.score), 3),
                    }
                    for c in found[:n_show]
                ],
            }
            others = [link for j, link in enumerate(links) if j != i and spans[j].text != text]
            error["kind"] = error_kind(error, others, linker.threshold)
            errors.append(error)
    kinds = Counter(e["kind"] for e in errors)
    return {
        "n_in_kb": n_in_kb,
        "n_errors": len(errors),
        "kinds": dict(kinds.most_common()),
        "errors": errors,
        "missed_pairs": missed,
        "spurious_pairs": spurious,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("dev", type=Path, help="PubTator file with concept identifiers")
    parser.add_argument("--kb", type=Path, required=True, help="KB folder (build-kb output)")
    parser.add_argument("--labels", default="Disease", help="Comma-separated mention labels")
    parser.add_argument("--candidates", type=int, default=5, help="Candidates shown per error")
    parser.add_argument("--limit", type=int, default=0, help="Errors printed (0: all)")
    parser.add_argument("--output", type=Path, default=None, help="Write every error to this JSON file")
    args = parser.parse_args()
    report = collect_errors(args.dev, args.kb, set(args.labels.split(",")), args.candidates)
    shown = report["errors"][: args.limit] if args.limit else report["errors"]
    for e in shown:
        cands = "; ".join(f"{c['id']} {c['alias']!r} {c['sim']:.2f}/{c['score']:.2f}" for c in e["candidates"])
        print(f"[{e['kind']}] {e['mention']!r} gold={e['gold']} pred={e['pred']} ({e['score']:.2f}) | {cands}")
    for pair in report["missed_pairs"]:
        print(f"[missed pair] {pair['pmid']} {pair['concept']}: {pair['mentions']}")
    for pair in report["spurious_pairs"]:
        print(f"[spurious pair] {pair['pmid']} {pair['concept']}: {pair['mentions']}")
    print(f"missed reachable pairs {len(report['missed_pairs'])}, spurious pairs {len(report['spurious_pairs'])}")
    print(f"in-KB mentions {report['n_in_kb']}, errors {report['n_errors']}:", json.dumps(report["kinds"]))
    if args.output is not None:
        report["command"] = "python " + " ".join(sys.argv)
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(json.dumps(report, indent=2) + "\n", encoding="utf8")


if __name__ == "__main__":
    main()
