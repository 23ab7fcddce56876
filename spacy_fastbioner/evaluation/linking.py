"""Scoring concept identifiers as the field reports them, on raw PubTator dev files.

- Document level (BioCreative V CDR, PubTator's figures): P/R/F over the set of (document,
  concept) pairs; a composite identifier "A|B" (or "A+B") gives one pair per concept.
- Mention level, with the gold spans: accuracy@1 with NIL counted (a mention whose gold
  identifier is "-1" is right when left unlinked), on all mentions and on those whose concepts
  are all in the KB; recall@k, the share of linkable mentions whose concepts are all among the
  candidates.
- Beside the linker: the recall ceiling (the share of gold pairs whose concept the KB holds),
  the dev concepts the KB never saw, and the field's exact-match dictionary baseline (a
  mention's `baseline_key` to its most frequent identifier in train).
"""

from collections import Counter, defaultdict
from typing import Any, Dict, Iterable, List, Optional, Sequence, Set, Tuple

from spacy.language import Language
from spacy.tokens import Doc, Span

from ..corpora.readers import PubTatorDocument
from ..kb.names import baseline_key, split_identifiers
from ..pipeline.linker import FastBioLinker

Pair = Tuple[str, str]  # (PMID, concept identifier)


def build_baseline(documents: Iterable[PubTatorDocument], labels: Set[str]) -> Dict[str, str]:
    """The exact-match dictionary: each mention key to its most frequent identifier (the first
    seen on a tie), from training documents.

    documents (Iterable[PubTatorDocument]): Training documents, with concept ids.
    labels (Set[str]): The mention labels to take.
    RETURNS (Dict[str, str]): `baseline_key(mention)` -> identifier.
    """
    counts: Dict[str, Counter] = defaultdict(Counter)
    for doc in documents:
        for (_, _, text, label), concept in zip(doc.mentions, doc.concept_ids):
            if label in labels:
                counts[baseline_key(text)][concept] += 1
    return {key: counter.most_common(1)[0][0] for key, counter in counts.items()}


def kb_concepts(entity_ids: Iterable[str]) -> Set[str]:
    """The concepts a KB holds: its identifiers, composite ones split."""
    return {concept for entity in entity_ids for concept in split_identifiers(entity)}


def prf(gold: Set[Pair], pred: Set[Pair]) -> Dict[str, float]:
    """Precision, recall and F (percentages) with their counts."""
    tp = len(gold & pred)
    p = tp / len(pred) if pred else 0.0
    r = tp / len(gold) if gold else 0.0
    f = 2 * p * r / (p + r) if p + r else 0.0
    return {"p": 100 * p, "r": 100 * r, "f": 100 * f, "tp": tp, "n_pred": len(pred), "n_gold": len(gold)}


def _gold_spans(
    doc: Doc, document: PubTatorDocument, labels: Set[str]
) -> Tuple[List[Span], List[Tuple[str, str]], int]:
    """The document's mentions of the labels as spans (moved out to token boundaries where they
    cut a token), their (text, identifier), and how many had to be moved."""
    spans: List[Span] = []
    concepts: List[Tuple[str, str]] = []
    moved = 0
    for (start, end, text, label), concept in zip(document.mentions, document.concept_ids):
        if label not in labels:
            continue
        span = doc.char_span(start, end, label=label, alignment_mode="expand")
        if span is None:
            continue  # only whitespace: nothing to link
        moved += (span.start_char, span.end_char) != (start, end)
        spans.append(span)
        concepts.append((text, concept))
    return spans, concepts, moved


def evaluate_linking(
    nlp: Language,
    linker: FastBioLinker,
    documents: Sequence[PubTatorDocument],
    labels: Set[str],
    *,
    baseline: Optional[Dict[str, str]] = None,
    k: int = 10,
) -> Dict[str, Any]:
    """Score a linker on the gold spans of PubTator documents.

    nlp (Language): A pipeline whose tokenizer makes the docs (its other components are not run).
    linker (FastBioLinker): The linker, with its KB.
    documents (Sequence[PubTatorDocument]): Dev documents, with concept ids.
    labels (Set[str]): The mention labels to score, e.g. {"Chemical"}.
    baseline (Optional[Dict[str, str]]): `build_baseline`'s dictionary, scored beside the linker.
    k (int): The candidates of recall@k.
    RETURNS (Dict[str, Any]): "doc_level" (linker, baseline, ceiling), "mention_level",
        "unseen_concepts", "n_docs", "n_mentions", "n_moved_spans".
    """
    known = kb_concepts(linker.kb.entity_ids)
    gold_pairs: Set[Pair] = set()
    pred_pairs: Set[Pair] = set()
    base_pairs: Set[Pair] = set()
    counts: Counter = Counter()
    for document in documents:
        doc = nlp.make_doc(document.text)
        spans, concepts, moved = _gold_spans(doc, document, labels)
        counts["moved"] += moved
        doc_links, doc_candidates = linker.link_with_candidates([doc], [spans])
        links, candidates = doc_links[0], doc_candidates[0]
        for (text, concept), (kb_id, _), found in zip(concepts, links, candidates):
            gold = split_identifiers(concept)
            pred = split_identifiers(kb_id)
            gold_pairs.update((document.pmid, c) for c in gold)
            pred_pairs.update((document.pmid, c) for c in pred)
            if baseline is not None:
                base = baseline.get(baseline_key(text), "")
                base_pairs.update((document.pmid, c) for c in split_identifiers(base))
            _count_mention(counts, gold, pred, found[:k], known)
    return _report(gold_pairs, pred_pairs, base_pairs if baseline is not None else None, known, counts, documents, k)


def _count_mention(counts: Counter, gold: List[str], pred: List[str], found: Sequence[Any], known: Set[str]) -> None:
    right = set(gold) == set(pred)
    counts["mentions"] += 1
    counts["correct"] += right
    counts["nil_gold"] += not gold
    counts["nil_pred"] += not pred
    counts["nil_correct"] += not gold and not pred
    if gold and set(gold) <= known:
        counts["in_kb"] += 1
        counts["in_kb_correct"] += right
        ids = {c for candidate in found for c in split_identifiers(candidate.entity_)}
        counts["in_kb_at_k"] += set(gold) <= ids
    if gold:
        ids = {c for candidate in found for c in split_identifiers(candidate.entity_)}
        counts["linkable"] += 1
        counts["at_k"] += set(gold) <= ids


def _report(
    gold: Set[Pair],
    pred: Set[Pair],
    base: Optional[Set[Pair]],
    known: Set[str],
    counts: Counter,
    documents: Sequence[PubTatorDocument],
    k: int,
) -> Dict[str, Any]:
    reachable = {pair for pair in gold if pair[1] in known}
    dev_concepts = {c for _, c in gold}
    ceiling_r = len(reachable) / len(gold) if gold else 0.0
    share = lambda n, d: 100 * counts[n] / counts[d] if counts[d] else 0.0  # noqa: E731
    doc_level: Dict[str, Any] = {
        "linker": prf(gold, pred),
        "ceiling": {"r": 100 * ceiling_r, "f": 100 * 2 * ceiling_r / (1 + ceiling_r), "n_reachable": len(reachable)},
    }
    if base is not None:
        doc_level["baseline"] = prf(gold, base)
    return {
        "n_docs": len(documents),
        "n_mentions": counts["mentions"],
        "n_moved_spans": counts["moved"],
        "doc_level": doc_level,
        "mention_level": {
            "accuracy_at_1": share("correct", "mentions"),
            "accuracy_at_1_in_kb": share("in_kb_correct", "in_kb"),
            f"recall_at_{k}": share("at_k", "linkable"),
            f"recall_at_{k}_in_kb": share("in_kb_at_k", "in_kb"),
            "n_in_kb": counts["in_kb"],
            "n_nil_gold": counts["nil_gold"],
            "n_nil_pred": counts["nil_pred"],
            "n_nil_correct": counts["nil_correct"],
        },
        "unseen_concepts": {
            "n_dev_concepts": len(dev_concepts),
            "n_unseen": len(dev_concepts - known),
            "n_pairs": len(gold),
            "n_unseen_pairs": len(gold) - len(reachable),
        },
    }


def evaluate_end_to_end(
    nlp: Language, documents: Sequence[PubTatorDocument], labels: Set[str], *, batch_size: int = 32
) -> Dict[str, Any]:
    """Document-level concept P/R/F of a full pipeline (NER and linker) on raw text.

    nlp (Language): The pipeline, ending with `fastbioner_linker`.
    documents (Sequence[PubTatorDocument]): Dev documents, with concept ids.
    labels (Set[str]): The labels to score (predicted entities of other labels are ignored).
    batch_size (int): The batch size of `nlp.pipe`.
    RETURNS (Dict[str, Any]): `prf` of the (document, concept) pairs.
    """
    gold: Set[Pair] = set()
    pred: Set[Pair] = set()
    for document, doc in zip(documents, nlp.pipe((d.text for d in documents), batch_size=batch_size)):
        for (_, _, _, label), concept in zip(document.mentions, document.concept_ids):
            if label in labels:
                gold.update((document.pmid, c) for c in split_identifiers(concept))
        for ent in doc.ents:
            if ent.label_ in labels:
                pred.update((document.pmid, c) for c in split_identifiers(ent.kb_id_))
    return prf(gold, pred)
