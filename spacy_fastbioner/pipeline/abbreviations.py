"""Abbreviations and document-level consistency: the `fastbioner_abbreviations`
component.

Definitions are found by Schwartz & Hearst's algorithm ("A simple algorithm for
identifying abbreviation definitions in biomedical text", PSB 2003), as
scispaCy's `AbbreviationDetector` does, written here for our tokenizer so that
scispaCy (and its approximate-neighbour index) need not be installed. Once a
short form is defined ("adenomatous polyposis coli (APC)"), its mentions across
the document take the entity of its long form, and the other way round.
"""

from collections import Counter
from typing import Dict, Iterable, Iterator, List, Optional, Sequence, Tuple

from spacy.language import Language
from spacy.tokens import Doc, Span
from spacy.util import filter_spans

MAX_SHORT_CHARS = 10
MAX_SHORT_WORDS = 2
MAX_INSIDE_TOKENS = 12  # a parenthesis longer than this is neither form
OPEN, CLOSE = "([", ")]"

if not Span.has_extension("long_form"):
    # scispaCy's name for the same thing, so code written for it reads ours.
    Span.set_extension("long_form", default=None)


def best_long_form(short: str, long: str) -> Optional[int]:
    """Schwartz & Hearst's match: walk the short form's letters and digits from
    right to left, matching each in order in the long form candidate; the
    first must start a word.

    short (str): The short form, e.g. "APC".
    long (str): The long-form candidate: the text before the parenthesis.
    RETURNS (Optional[int]): The character offset in `long` where the long form
        starts, or None if the short form does not match.
    """
    s, pos = len(short) - 1, len(long) - 1
    while s >= 0:
        char = short[s].lower()
        if not char.isalnum():
            s -= 1
            continue
        while pos >= 0 and (long[pos].lower() != char or (s == 0 and pos > 0 and long[pos - 1].isalnum())):
            pos -= 1
        if pos < 0:
            return None
        pos -= 1
        s -= 1
    return pos + 1


def is_short_form(text: str) -> bool:
    """Schwartz & Hearst's filter of short-form candidates: 2 to 10 characters,
    at most two words, a letter in it, and a letter or digit first."""
    return (
        2 <= len(text) <= MAX_SHORT_CHARS
        and len(text.split()) <= MAX_SHORT_WORDS
        and any(c.isalpha() for c in text)
        and text[0].isalnum()
    )


def find_definitions(doc: Doc) -> List[Tuple[Span, Span]]:
    """Abbreviation definitions: "long form (short form)" and, where the
    parenthesis is too long to be a short form, "short form (long form)".

    doc (Doc): The doc, tokenized.
    RETURNS (List[Tuple[Span, Span]]): (short form, long form) pairs, in the
        order of the doc; a short form is defined once (its first definition).
    """
    pairs: List[Tuple[Span, Span]] = []
    seen: set = set()
    for open_i, close_i in _parentheses(doc):
        inside = doc[open_i + 1 : close_i]
        if not len(inside):
            continue
        pair: Optional[Tuple[Span, Span]] = None
        if is_short_form(inside.text):
            pair = _long_before(doc, inside, open_i)
        elif open_i > 0 and is_short_form(doc[open_i - 1].text) and len(inside.text) > len(doc[open_i - 1].text):
            short = doc[open_i - 1 : open_i]
            start = best_long_form(short.text, inside.text)
            if start is not None:
                long = doc.char_span(inside.start_char + start, inside.end_char, alignment_mode="expand")
                pair = (short, long) if long is not None else None
        if pair is not None and pair[0].text not in seen and len(pair[1].text) > len(pair[0].text):
            seen.add(pair[0].text)
            pairs.append(pair)
    return pairs


def find_abbreviations(doc: Doc) -> List[Tuple[Span, Span]]:
    """Every mention of every short form defined in the doc, with its long form.

    doc (Doc): The doc, tokenized.
    RETURNS (List[Tuple[Span, Span]]): (short-form mention, long form of its
        definition) pairs, in the order of the mentions; the definition's own
        short form is one of them.
    """
    definitions = find_definitions(doc)
    if not definitions:
        return []
    by_words: Dict[Tuple[str, ...], Span] = {tuple(t.text for t in short): long for short, long in definitions}
    lengths = sorted({len(key) for key in by_words}, reverse=True)
    text = doc.text  # built once: Doc.text joins every token
    mentions: List[Tuple[Span, Span]] = []
    i = 0
    while i < len(doc):
        for n in lengths:
            key = tuple(t.text for t in doc[i : i + n])
            if key in by_words and _stands_alone(doc, text, i, i + n):
                mentions.append((doc[i : i + n], by_words[key]))
                i += n
                break
        else:
            i += 1
    return mentions


@Language.factory(
    "fastbioner_abbreviations",
    assigns=["doc.ents", "token.ent_iob", "token.ent_type", "span._.long_form"],
    default_config={"spans_key": "abbreviations", "make_consistent": True},
    default_score_weights={"ents_f": 1.0, "ents_p": 0.0, "ents_r": 0.0, "ents_per_type": None},
)
def make_fastbioner_abbreviations(
    nlp: Language, name: str, spans_key: str, make_consistent: bool
) -> "AbbreviationConsistency":
    """Create a component that finds abbreviation definitions and, after the
    NER, makes each short form's mentions agree with its long form.
    """
    return AbbreviationConsistency(name, spans_key=spans_key, make_consistent=make_consistent)


class AbbreviationConsistency:
    """Store the short-form mentions of each doc in `doc.spans[spans_key]`
    (each with `span._.long_form`) and make the entities consistent:

    - a long form that is an entity gives its label to every mention of its
      short form (and a mention inside no entity becomes one);
    - a long form that is no entity takes the label that most of its short
      form's mentions have, if they agree, and then so do all the mentions;
    - otherwise the mentions of the short form are no entities either.

    A mention that lies inside a longer entity ("APC gene mutations") is left
    as it is. Never raises on a doc; a doc without definitions is unchanged.
    """

    def __init__(
        self, name: str = "fastbioner_abbreviations", *, spans_key: str = "abbreviations", make_consistent: bool = True
    ) -> None:
        """Initialize the component.

        name (str): The component instance name.
        spans_key (str): The `doc.spans` key of the short-form mentions.
        make_consistent (bool): Change the entities; if False, only store the
            abbreviations.
        """
        self.name = name
        self.cfg = {"spans_key": spans_key, "make_consistent": make_consistent}

    def __call__(self, doc: Doc) -> Doc:
        """Find the doc's abbreviations and make its entities consistent.

        doc (Doc): The doc, with entities from the NER.
        RETURNS (Doc): The same doc.
        """
        mentions = find_abbreviations(doc)
        group = []
        for short, long in mentions:
            short._.long_form = long
            group.append(short)
        doc.spans[str(self.cfg["spans_key"])] = group
        if mentions and self.cfg["make_consistent"]:
            doc.ents = consistent_entities(doc, mentions)
        return doc

    def pipe(self, stream: Iterable[Doc], batch_size: int = 128) -> Iterator[Doc]:
        """Process a stream of docs.

        stream (Iterable[Doc]): The docs.
        batch_size (int): Unused; for compatibility with `nlp.pipe`.
        YIELDS (Doc): The docs, in order.
        """
        for doc in stream:
            yield self(doc)


def use_abbreviations(nlp: Language, enabled: bool, *, name: str = "fastbioner_abbreviations") -> Language:
    """Add the component (after the NER, before a linker) or remove it.

    nlp (Language): The pipeline, changed in place.
    enabled (bool): Whether the pipeline should run the component.
    name (str): The component's name in the pipeline.
    RETURNS (Language): The same pipeline.
    """
    if enabled and name not in nlp.pipe_names:
        before = next((n for n, pipe in nlp.pipeline if getattr(pipe, "is_linker", False)), None)
        nlp.add_pipe("fastbioner_abbreviations", name=name, before=before)
    elif not enabled and name in nlp.pipe_names:
        nlp.remove_pipe(name)
    return nlp


def consistent_entities(doc: Doc, mentions: Sequence[Tuple[Span, Span]]) -> List[Span]:
    """The doc's entities, changed so that each short form's mentions carry the
    label its long form decides (see `AbbreviationConsistency`).

    doc (Doc): The doc, with entities.
    mentions (Sequence[Tuple[Span, Span]]): From `find_abbreviations`.
    RETURNS (List[Span]): The new entities, without overlaps.
    """
    ents = list(doc.ents)
    by_long: Dict[Tuple[int, int], List[Span]] = {}
    longs: Dict[Tuple[int, int], Span] = {}
    for short, long in mentions:
        by_long.setdefault((long.start, long.end), []).append(short)
        longs[(long.start, long.end)] = long
    add: List[Span] = []
    drop: set = set()
    for key, shorts in by_long.items():
        long = longs[key]
        long_label = _label_of(doc, long)
        votes = Counter(_label_of(doc, s) for s in shorts if not _inside_longer_entity(doc, s))
        label = long_label
        if label is None:
            top = votes.most_common(2)
            if top and top[0][0] is not None and (len(top) == 1 or top[0][1] > top[1][1]):
                label = top[0][0]
                add.append(Span(doc, long.start, long.end, label=label))
        for short in shorts:
            if _inside_longer_entity(doc, short):
                continue
            for ent in ents:
                if ent.start < short.end and short.start < ent.end:
                    drop.add((ent.start, ent.end))
            if label is not None:
                add.append(Span(doc, short.start, short.end, label=label))
    kept = [ent for ent in ents if (ent.start, ent.end) not in drop]
    # New spans first: filter_spans keeps the longest, and the earlier of equal ones.
    return sorted(filter_spans(add + kept), key=lambda span: span.start)


def _label_of(doc: Doc, span: Span) -> Optional[str]:
    """The label of the entity on the span's last token (a long form's head)."""
    return doc[span.end - 1].ent_type_ or None


def _inside_longer_entity(doc: Doc, span: Span) -> bool:
    """The span is part of an entity that reaches beyond it."""
    first, last = doc[span.start], doc[span.end - 1]
    if not first.ent_type_:
        return False
    longer_left = first.ent_iob_ == "I"
    longer_right = span.end < len(doc) and doc[span.end].ent_iob_ == "I"
    return longer_left or longer_right or last.ent_type_ != first.ent_type_


def _parentheses(doc: Doc) -> Iterator[Tuple[int, int]]:
    """(open, close) token indices of parentheses and brackets that close within
    `MAX_INSIDE_TOKENS` tokens, without another opening in between."""
    for i, token in enumerate(doc):
        if token.text in OPEN:
            closing = CLOSE[OPEN.index(token.text)]
            for j in range(i + 1, min(i + 2 + MAX_INSIDE_TOKENS, len(doc))):
                if doc[j].text == closing:
                    yield i, j
                    break
                if doc[j].text in OPEN:
                    break


def _long_before(doc: Doc, short: Span, open_i: int) -> Optional[Tuple[Span, Span]]:
    """The long form before "(short)": at most min(|A| + 5, 2|A|) words back
    (|A| the short form's characters), within the sentence."""
    n_chars = len(short.text.replace(" ", ""))
    max_words = min(n_chars + 5, n_chars * 2)
    start, words = open_i, 0
    while start > 0 and words < max_words:
        token = doc[start - 1]
        if token.text in OPEN or token.text in CLOSE or token.text in ";:":
            break
        start -= 1
        words += any(c.isalnum() for c in token.text)
        if token.is_sent_start:
            break
    if start >= open_i:
        return None
    candidate = doc[start:open_i]
    offset = best_long_form(short.text, candidate.text)
    if offset is None:
        return None
    long = doc.char_span(candidate.start_char + offset, candidate.end_char, alignment_mode="expand")
    return (short, long) if long is not None and len(long) else None


def _stands_alone(doc: Doc, text: str, start: int, end: int) -> bool:
    """The tokens are not glued to letters or digits on either side (so "AR"
    in "ARs" or "CAR" is no mention); `text` is `doc.text`."""
    before = doc[start].idx - 1
    after = doc[end - 1].idx + len(doc[end - 1])
    return (before < 0 or not text[before].isalnum()) and (after >= len(text) or not text[after].isalnum())
