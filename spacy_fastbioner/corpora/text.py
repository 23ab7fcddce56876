"""Sentence splitting of raw text, shared by the corpus readers (which cut
abstracts into training sentences) and the `fastbioner_sentences` component
(which cuts text the same way at inference)."""

import re
from typing import List, Tuple

_SENT_BOUNDARY = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9])")


def trim(text: str, start: int, end: int) -> Tuple[int, int]:
    """Shrink (start, end) to exclude surrounding whitespace.

    text (str): The text.
    start (int): The first character.
    end (int): The character after the last.
    RETURNS (Tuple[int, int]): The trimmed span; end <= start if it held only whitespace.
    """
    chunk = text[start:end]
    return start + len(chunk) - len(chunk.lstrip()), end - len(chunk) + len(chunk.rstrip())


def split_sentences(text: str) -> List[Tuple[int, int]]:
    """Split text at whitespace after `.`, `!` or `?` that precedes an uppercase letter or a digit.
    Simple and deterministic, not linguistically clever (it splits after "e.g. A").

    text (str): The text.
    RETURNS (List[Tuple[int, int]]): Character spans of the non-empty, whitespace-trimmed sentences.
    """
    spans, start = [], 0
    for match in _SENT_BOUNDARY.finditer(text):
        spans.append(trim(text, start, match.start()))
        start = match.end()
    spans.append(trim(text, start, len(text)))
    return [(s, e) for s, e in spans if e > s]
