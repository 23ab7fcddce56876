"""Evaluate a pipeline on raw text as users have it: each PubTator document's
title + " " + abstract goes through the pipeline's own tokenizer, and the
predicted entities are scored against the gold character offsets.

Token-level evaluation (`spacy evaluate`) maps gold mentions onto tokens first,
so a mention that starts or ends inside a token is silently moved to the token
boundary. Raw-text scoring counts such a mention as missed unless the
prediction has its exact character offsets, which is what a user of the
pipeline gets. `evaluate_token_level` scores the same documents the token-level
way, so the two can be put side by side.
"""

from collections import defaultdict
from pathlib import Path
from typing import Any, Dict, Iterable, List, Optional, Sequence, Set, Tuple, Union

from spacy.language import Language
from spacy.tokens import Doc

from ..corpora.readers import PubTatorCorpus, PubTatorDocument

CharSpan = Tuple[int, int, str]  # (start, end, label), character offsets


def evaluate_raw(nlp: Language, documents: Iterable[PubTatorDocument], *, batch_size: int = 32) -> Dict[str, Any]:
    """Run the pipeline on each document's raw text and score the predicted
    entities against the gold mentions by exact (start, end, label) match of
    character offsets.

    nlp (Language): The pipeline.
    documents (Iterable[PubTatorDocument]): Documents, e.g. from `read_pubtator`;
        `text` is title + " " + abstract and the mentions index into it.
    batch_size (int): The batch size of `nlp.pipe`.
    RETURNS (Dict[str, Any]): "ents_p", "ents_r", "ents_f" (fractions, 0 when
        undefined), "ents_per_type" ({label: {"p", "r", "f"}}), shaped like the
        output of `spacy evaluate`; "n_docs", "n_gold", "n_pred"; "n_unreachable",
        the gold mentions whose start or end is not a token boundary of the
        pipeline's tokenizer (`tokenizer_study.boundary_study`'s "cut", plus the rare mention
        that starts or ends inside whitespace); and
        "max_reachable_r", the recall that a perfect tagger could reach on
        these tokens (reachable mentions, at most one of any overlapping
        group kept, over all gold mentions).
    """
    documents = list(documents)
    golds = [_gold_spans(doc) for doc in documents]
    texts = [doc.text for doc in documents]
    preds: List[Set[CharSpan]] = []
    n_unreachable = n_reachable = 0
    for doc, gold in zip(nlp.pipe(texts, batch_size=batch_size), golds):
        preds.append({(ent.start_char, ent.end_char, ent.label_) for ent in doc.ents})
        starts, ends = _token_edges(doc)
        reachable = [(s, e) for s, e, _ in gold if s in starts and e in ends]
        n_unreachable += len(gold) - len(reachable)
        n_reachable += _max_disjoint(reachable)
    scores = _prf(golds, preds)
    n_gold = sum(len(gold) for gold in golds)
    scores.update(
        n_docs=len(documents),
        n_gold=n_gold,
        n_pred=sum(len(pred) for pred in preds),
        n_unreachable=n_unreachable,
        max_reachable_r=n_reachable / n_gold if n_gold else 0.0,
    )
    return scores


def evaluate_token_level(
    nlp: Language,
    path: Union[str, Path],
    *,
    type_map: Optional[Dict[str, str]] = None,
    batch_size: int = 32,
) -> Dict[str, Any]:
    """Score the documents of a PubTator file the token-level way, with
    `nlp.evaluate` on `PubTatorCorpus` examples: whole documents tokenized by
    the pipeline, gold mentions moved to token boundaries (alignment mode
    "expand"), overlapping mentions reduced to the longest.

    nlp (Language): The pipeline.
    path (Union[str, Path]): The PubTator file.
    type_map (Optional[Dict[str, str]]): Label renames, as in `read_pubtator`.
    batch_size (int): The batch size of `nlp.evaluate`.
    RETURNS (Dict[str, Any]): "ents_p", "ents_r", "ents_f", "ents_per_type"
        from spaCy's NER scorer, and "n_docs", "n_gold" (the mentions kept on
        the reference docs), "n_misaligned", "n_overlapping".
    """
    corpus = PubTatorCorpus(path, type_map=type_map, alignment_mode="expand")
    examples = list(corpus(nlp))
    scores = nlp.evaluate(examples, batch_size=batch_size)
    result: Dict[str, Any] = {key: scores.get(key) for key in ("ents_p", "ents_r", "ents_f", "ents_per_type")}
    result.update(
        n_docs=corpus.n_docs,
        n_gold=sum(len(eg.reference.ents) for eg in examples),
        n_misaligned=corpus.n_misaligned,
        n_overlapping=corpus.n_overlapping,
    )
    return result


def _gold_spans(doc: PubTatorDocument) -> Set[CharSpan]:
    """The gold mentions as a set: a mention listed twice counts once."""
    return {(start, end, label) for start, end, _, label in doc.mentions}


def _token_edges(doc: Doc) -> Tuple[Set[int], Set[int]]:
    """Character offsets where a token starts, and where one ends."""
    starts = {token.idx for token in doc}
    ends = {token.idx + len(token) for token in doc}
    return starts, ends


def _max_disjoint(spans: Sequence[Tuple[int, int]]) -> int:
    """The largest number of pairwise non-overlapping spans (interval
    scheduling: greedy by end offset)."""
    count, last_end = 0, -1
    for start, end in sorted(set(spans), key=lambda span: (span[1], span[0])):
        if start >= last_end:
            count, last_end = count + 1, end
    return count


def _prf(golds: Sequence[Set[CharSpan]], preds: Sequence[Set[CharSpan]]) -> Dict[str, Any]:
    """Micro P/R/F over all documents, and per label."""
    counts: Dict[str, List[int]] = defaultdict(lambda: [0, 0, 0])  # tp, n_pred, n_gold
    for gold, pred in zip(golds, preds):
        for _, _, label in pred:
            counts[label][1] += 1
        for span in gold:
            counts[span[2]][2] += 1
            counts[span[2]][0] += span in pred
    tp, n_pred, n_gold = (sum(c[i] for c in counts.values()) for i in range(3))
    p, r, f = _p_r_f(tp, n_pred, n_gold)
    per_type = {}
    for label in sorted(counts):
        lp, lr, lf = _p_r_f(*counts[label])
        per_type[label] = {"p": lp, "r": lr, "f": lf}
    return {"ents_p": p, "ents_r": r, "ents_f": f, "ents_per_type": per_type}


def _p_r_f(tp: int, n_pred: int, n_gold: int) -> Tuple[float, float, float]:
    p = tp / n_pred if n_pred else 0.0
    r = tp / n_gold if n_gold else 0.0
    f = 2 * p * r / (p + r) if p + r else 0.0
    return p, r, f
