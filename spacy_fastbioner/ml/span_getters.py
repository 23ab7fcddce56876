"""Transformer windows that follow sentence boundaries.

A teacher fine-tuned on single sentences tags raw abstracts worse when
`spacy-transformers.strided_spans.v1` feeds it windows that run across several
sentences (see the README's raw-text results). `spacy-transformers.sent_spans.v1` feeds one sentence per
span, but has no limit on a sentence's length, so a long text without sentence
punctuation would exceed the transformer's positions. The span getter here
feeds one span per sentence and strides a sentence longer than the window
inside that sentence, exactly as `strided_spans` strides a doc.
"""

from functools import partial
from typing import Callable, Iterable, List, Tuple

import catalogue
from spacy.tokens import Doc, Span
from spacy_transformers.util import registry

SENTENCE_SPANS = "spacy_fastbioner.sentence_spans.v1"
# spacy-transformers adds this catalogue registry to spaCy's at import time
# (entry point group "spacy_span_getters"); typed here for mypy.
span_getters: catalogue.Registry = getattr(registry, "span_getters")  # noqa: B009  (not in its stubs)


def strided_ranges(start: int, end: int, window: int, stride: int) -> List[Tuple[int, int]]:
    """Cut the token range [start, end) into windows of `window` tokens every
    `stride` tokens, as `spacy-transformers.strided_spans.v1` cuts a doc: one
    range when it has at most `window` tokens, none when it is empty.

    start (int): The first token.
    end (int): The token after the last.
    window (int): The most tokens in a window.
    stride (int): The tokens between two window starts, at most `window`.
    RETURNS (List[Tuple[int, int]]): The (start, end) token ranges, covering
        every token of [start, end).
    """
    length = end - start
    ranges: List[Tuple[int, int]] = []
    offset = 0
    for _ in range(length // stride):
        ranges.append((start + offset, start + min(offset + window, length)))
        if offset + window >= length:
            break
        offset += stride
    else:
        if offset < length:
            ranges.append((start + offset, end))
    return ranges


def get_sentence_spans(docs: Iterable[Doc], window: int, stride: int) -> List[List[Span]]:
    """One span per sentence of each doc, a sentence longer than `window`
    tokens strided inside it; a doc without sentence boundaries strided whole.

    docs (Iterable[Doc]): The docs.
    window (int): The most tokens in a span.
    stride (int): The tokens between two span starts within a long sentence.
    RETURNS (List[List[Span]]): Per doc, spans that cover every token; none for
        an empty doc.
    """
    spans: List[List[Span]] = []
    for doc in docs:
        if not len(doc):
            spans.append([])
            continue
        if doc.has_annotation("SENT_START"):
            sentences = [(sent.start, sent.end) for sent in doc.sents]
        else:
            sentences = [(0, len(doc))]
        spans.append([doc[s:e] for start, end in sentences for s, e in strided_ranges(start, end, window, stride)])
    return spans


@span_getters(SENTENCE_SPANS)
def configure_sentence_spans(window: int = 128, stride: int = 96) -> Callable[[List[Doc]], List[List[Span]]]:
    """Create a span getter that gives the transformer one span per sentence
    (from `doc.sents`, e.g. set by the `fastbioner_sentences` component) and
    strides a sentence longer than `window` tokens, as
    `spacy-transformers.strided_spans.v1` does, inside that sentence. A doc
    without sentence boundaries is strided whole, as by `strided_spans`.

    window (int): The most tokens in a span; the transformer's wordpiece limit
        (e.g. 512) must hold the wordpieces of this many tokens.
    stride (int): The tokens between two span starts in a long sentence, from
        1 to `window`; below `window`, neighbouring spans overlap.
    RETURNS (Callable[[List[Doc]], List[List[Span]]]): The span getter.
    """
    if window < 1 or not 1 <= stride <= window:
        raise ValueError(
            f"[{SENTENCE_SPANS}] expected 1 <= stride <= window, found window={window}, "
            f"stride={stride}: a stride over the window would leave tokens outside every span"
        )
    # A partial, not a closure: `nlp.pipe(n_process=N)` pickles the pipeline
    # for its workers under the spawn start method.
    return partial(get_sentence_spans, window=window, stride=stride)
