"""Studies of how well a tokenizer fits a corpus: gold entities whose boundary
falls inside a token, reference tokens that it would split further, and token
agreement with a reference tokenisation of the same texts. Run over the
corpora by `project/scripts/tokenizer_study.py`."""

import re
from bisect import bisect_right
from collections import Counter
from itertools import accumulate
from typing import Any, Callable, Dict, Iterable, List, Sequence, Tuple

from spacy.tokens import Doc


def boundary_study(
    docs: Iterable[Tuple[str, Sequence[Tuple[int, int]]]],
    make_doc: Callable[[str], Doc],
    *,
    n_examples: int = 10,
) -> Dict[str, Any]:
    """Count gold entities whose start or end falls strictly inside a token,
    so that no sequence of whole tokens can represent them.

    docs (Iterable[Tuple[str, Sequence[Tuple[int, int]]]]): Texts with gold
        character spans (start, end).
    make_doc (Callable[[str], Doc]): The tokenizer to study, e.g. `nlp.make_doc`.
    n_examples (int): How many cut entities to return as examples.
    RETURNS (Dict[str, Any]): "docs", "entities", "cut" (start or end cut),
        "cut_start", "cut_end", "cut_pct" and "examples": (mention, the
        tokens that overlap it).
    """
    n_docs = n_ents = cut = cut_start = cut_end = 0
    examples: List[Tuple[str, List[str]]] = []
    for text, spans in docs:
        doc = make_doc(text)
        starts = [token.idx for token in doc]
        ends = [token.idx + len(token) for token in doc]
        n_docs += 1
        for start, end in spans:
            n_ents += 1
            bad_start, bad_end = _inside(starts, ends, start), _inside(starts, ends, end)
            cut_start += bad_start
            cut_end += bad_end
            if bad_start or bad_end:
                cut += 1
                if len(examples) < n_examples:
                    toks = [t.text for t in doc if t.idx < end and t.idx + len(t) > start]
                    examples.append((text[start:end], toks))
    cut_pct = 100.0 * cut / max(n_ents, 1)
    return dict(
        docs=n_docs, entities=n_ents, cut=cut, cut_start=cut_start, cut_end=cut_end, cut_pct=cut_pct, examples=examples
    )


def _inside(starts: Sequence[int], ends: Sequence[int], pos: int) -> bool:
    """Whether character `pos` falls strictly inside a token (not at its start)."""
    i = bisect_right(starts, pos) - 1
    return i >= 0 and starts[i] < pos < ends[i]


def token_split_study(tokens: Iterable[str], make_doc: Callable[[str], Doc]) -> Dict[str, Any]:
    """Count reference tokens (e.g. from an IOB file) that the tokenizer would
    split further when applied to the token alone.

    tokens (Iterable[str]): The reference tokens.
    make_doc (Callable[[str], Doc]): The tokenizer to study.
    RETURNS (Dict[str, Any]): "tokens", "split", "split_pct", "examples".
    """
    counts = Counter(tokens)
    split = [token for token in counts if len(make_doc(token)) != 1]
    n_tokens = sum(counts.values())
    n_split = sum(counts[token] for token in split)
    examples = sorted(split, key=lambda token: -counts[token])[:10]
    split_pct = 100.0 * n_split / max(n_tokens, 1)
    return dict(tokens=n_tokens, split=n_split, split_pct=split_pct, examples=examples)


def alignment_study(
    texts: Iterable[str], reference_tokens: Sequence[str], make_doc: Callable[[str], Doc]
) -> Dict[str, Any]:
    """Compare the tokens of raw texts with a reference tokenisation of the same
    texts (e.g. an IOB file, documents in any order). Tokens are compared as
    spans of the text with all whitespace removed.

    texts (Iterable[str]): The raw texts.
    reference_tokens (Sequence[str]): All tokens of the reference, in order.
    make_doc (Callable[[str], Doc]): The tokenizer to study.
    RETURNS (Dict[str, Any]): "docs", "docs_found" (texts found in the
        reference), "docs_identical", "tokens", "reference_tokens", "matched",
        "precision" and "recall" (of token spans, over the found texts).
    """
    reference = "".join(reference_tokens)
    ref_ends = list(accumulate(len(token) for token in reference_tokens))
    ref_starts = [end - len(token) for end, token in zip(ref_ends, reference_tokens)]
    ref_spans = set(zip(ref_starts, ref_ends))
    n_docs = found = identical = n_ours = n_ref = matched = 0
    for text in texts:
        n_docs += 1
        pieces = [re.sub(r"\s+", "", token.text) for token in make_doc(text)]
        pieces = [piece for piece in pieces if piece]
        offset = reference.find("".join(pieces))
        if offset < 0 or not pieces:
            continue
        found += 1
        ends = list(accumulate((len(piece) for piece in pieces), initial=offset))
        ours = list(zip(ends, ends[1:]))
        lo = bisect_right(ref_starts, ours[0][0]) - 1
        hi = bisect_right(ref_starts, ours[-1][1] - 1)
        doc_matched = sum(span in ref_spans for span in ours)
        identical += doc_matched == len(ours) == hi - lo
        n_ours += len(ours)
        n_ref += hi - lo
        matched += doc_matched
    return dict(
        docs=n_docs,
        docs_found=found,
        docs_identical=identical,
        tokens=n_ours,
        reference_tokens=n_ref,
        matched=matched,
        precision=matched / max(n_ours, 1),
        recall=matched / max(n_ref, 1),
    )
