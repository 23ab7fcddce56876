"""Corpus readers: IOB2 token files, PubTator abstracts, and unlabelled text for distillation.

Each reader is a small class whose `__call__(nlp)` re-reads its file on every pass and yields
`Example`s. Bad input raises `CorpusError` naming `path:line`, what was found and what was expected.
"""

import logging
import random
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, Iterable, Iterator, List, Optional, Sequence, Tuple, Union

from spacy.language import Language
from spacy.tokens import Doc, Span
from spacy.training import Example, biluo_tags_to_spans, iob_to_biluo
from spacy.util import filter_spans, registry
from wasabi import msg

from .pubtator import HEAD as PUBTATOR_HEAD
from .pubtator import PubTatorBlock, PubTatorError, parse_pubtator_block
from .pubtator import quote as _quote
from .text import split_sentences, trim

logger = logging.getLogger(__name__)

# NCBI-disease's four mention types are all diseases; other types (e.g. BC5CDR's) are kept as they are.
DEFAULT_TYPE_MAP: Dict[str, str] = dict.fromkeys(
    ("SpecificDisease", "DiseaseClass", "Modifier", "CompositeMention"), "Disease"
)
IOB_FORMAT = "'token<TAB>tag'"
_TAG = re.compile(r"^(?:O|[BI]-\S+)$")

IobSentence = Tuple[List[str], List[str]]  # (words, IOB2 tags)
Mention = Tuple[int, int, str, str]  # (start, end, text, label)
_Unit = Tuple[str, List[Tuple[int, int, str, int]]]  # (text, [(start, end, label, line)])


class CorpusError(ValueError):
    """A corpus file that does not hold what its format promises.

    path (Path): The file.
    line (int): The 1-based line number, or 0 when the error concerns the whole file.
    """

    def __init__(self, path: Union[str, Path], line: int, message: str) -> None:
        self.path, self.line = Path(path), line
        super().__init__(f"{path}:{line}: {message}" if line else f"{path}: {message}")


def _check_path(path: Union[str, Path], expected: str) -> Path:
    path = Path(path)
    if not path.is_file():
        reason = "not a regular file" if path.exists() else "file not found"
        raise CorpusError(path, 0, f"{reason}; expected a {expected} file")
    return path


def _read_lines(path: Path, expected: str) -> Iterator[Tuple[int, str]]:
    """Yield (line number, line without CR/LF and BOM); CorpusError on a missing file or bad bytes."""
    with _check_path(path, expected).open("rb") as file_:
        for i, raw in enumerate(file_, 1):
            try:
                line = raw.rstrip(b"\r\n").decode("utf8")
            except UnicodeDecodeError as err:
                raise CorpusError(
                    path, i, f"invalid UTF-8 byte {raw[err.start]:#04x} at column {err.start + 1}; expected UTF-8 text"
                ) from None
            yield i, (line.lstrip("\ufeff") if i == 1 else line)


class _Reader:
    """Report a pass's problems once per pass: a warning the first time, later at INFO level."""

    _warned = False

    def _report(self, problems: str) -> None:
        if not self._warned:
            msg.warn(problems)
        (logger.info if self._warned else logger.warning)(problems)
        self._warned = True


def read_iob(path: Union[str, Path], *, repair: bool = False) -> Iterator[Tuple[IobSentence, int]]:
    """Parse a `token<TAB>tag` file lazily, validating every line. CRLF, whitespace-only separator
    lines and a missing final blank line are tolerated.

    path (Union[str, Path]): The file.
    repair (bool): Turn an `I-X` that does not continue an `X` entity into `B-X` instead of raising.
    YIELDS (Tuple[IobSentence, int]): Each sentence's (words, tags) and how many tags were repaired.
    """
    path = Path(path)
    words: List[str] = []
    tags: List[str] = []
    repairs = n_sents = 0
    for i, line in _read_lines(path, IOB_FORMAT + " corpus"):
        if not line.strip():
            if words:
                n_sents += 1
                yield (words, tags), repairs
                words, tags, repairs = [], [], 0
            continue
        cols = line.split("\t")
        if len(cols) != 2 or not cols[0]:
            why = "no tab" if len(cols) == 1 else f"{len(cols)} columns" if cols[0] else "empty token"
            raise CorpusError(path, i, f"expected {IOB_FORMAT}, found {_quote(line)} ({why})")
        word, tag = cols[0], cols[1].strip()
        if not _TAG.match(tag):
            raise CorpusError(path, i, f"expected a tag 'O', 'B-<type>' or 'I-<type>', found {_quote(tag)}")
        prev = tags[-1] if tags else "O"
        if tag.startswith("I-") and (prev == "O" or prev[2:] != tag[2:]):
            if not repair:
                after = repr(prev) if tags else "the sentence start"
                raise CorpusError(
                    path,
                    i,
                    f"{tag!r} follows {after}; expected 'B-{tag[2:]}' (an entity starts "
                    f"with B-), or pass repair=True to turn it into 'B-{tag[2:]}'",
                )
            tag, repairs = "B-" + tag[2:], repairs + 1
        words.append(word)
        tags.append(tag)
    if words:
        n_sents += 1
        yield (words, tags), repairs
    if not n_sents:
        raise CorpusError(path, 0, f"no sentences found; expected {IOB_FORMAT} lines, a blank line between sentences")


def _iob_example(nlp: Language, sents: Sequence[IobSentence], sent_starts: bool) -> Example:
    words = [w for sent_words, _ in sents for w in sent_words]
    spaces = [True] * (len(words) - 1) + [False]
    predicted = Doc(nlp.vocab, words=words, spaces=spaces)
    reference = Doc(nlp.vocab, words=words, spaces=spaces)
    tags = [t for _, sent_tags in sents for t in sent_tags]
    reference.set_ents(biluo_tags_to_spans(reference, iob_to_biluo(tags)), default="outside")
    if sent_starts:
        starts = {sum(len(w) for w, _ in sents[:k]) for k in range(len(sents))}
        for token in reference:
            token.is_sent_start = token.i in starts
    return Example(predicted, reference)


class IobCorpus(_Reader):
    """Read a `token<TAB>tag` IOB2 file (tags `O`, `B-X`, `I-X`; a blank line between sentences).

    Predicted and reference docs hold the file's tokens, a space after each but the last; the
    reference annotates every token (an entity or an explicit `O`) and, when `sentences_per_doc`
    > 1, the sentence starts. After a pass, `n_examples`, `n_sentences` and `n_repairs` hold its counts.

    path (Union[str, Path]): The file.
    limit (int): Read at most this many Examples (the first ones); 0 for all.
    shuffle (bool): Shuffle the Examples in memory on each pass (seeded by spaCy's `fix_random_seed`).
    repair (bool): Turn an `I-X` at a sentence start, after `O` or after another type into `B-X`,
        count it and log the count after the pass, instead of raising CorpusError.
    sentences_per_doc (int): How many consecutive sentences make one Example.
    """

    def __init__(
        self,
        path: Union[str, Path],
        *,
        limit: int = 0,
        shuffle: bool = False,
        repair: bool = False,
        sentences_per_doc: int = 1,
    ) -> None:
        if sentences_per_doc < 1:
            raise ValueError(f"sentences_per_doc: expected an integer >= 1, found {sentences_per_doc}")
        self.path = _check_path(path, IOB_FORMAT + " corpus")
        self.limit, self.shuffle, self.repair, self.sentences_per_doc = limit, shuffle, repair, sentences_per_doc
        self.n_examples = self.n_sentences = self.n_repairs = 0

    def _groups(self) -> Iterator[List[IobSentence]]:
        group: List[IobSentence] = []
        n_groups = 0
        for sent, repairs in read_iob(self.path, repair=self.repair):
            self.n_repairs += repairs
            group.append(sent)
            if len(group) == self.sentences_per_doc:
                yield group
                group, n_groups = [], n_groups + 1
                if n_groups == self.limit:
                    return
        if group:
            yield group

    def __call__(self, nlp: Language) -> Iterator[Example]:
        self.n_examples = self.n_sentences = self.n_repairs = 0
        groups: Iterable[List[IobSentence]] = self._groups()
        if self.shuffle:
            groups = list(groups)
            random.shuffle(groups)
        for group in groups:
            self.n_examples += 1
            self.n_sentences += len(group)
            yield _iob_example(nlp, group, self.sentences_per_doc > 1)
        if self.n_repairs:
            self._report(f"{self.path}: repaired {self.n_repairs} invalid I- tag(s) into B- (repair=True)")


@registry.readers("spacy_fastbioner.IobCorpus.v1")
def create_iob_reader(
    path: Path, *, limit: int = 0, shuffle: bool = False, repair: bool = False, sentences_per_doc: int = 1
) -> IobCorpus:
    """Create an IobCorpus reader (see its docstring for the arguments)."""
    return IobCorpus(path, limit=limit, shuffle=shuffle, repair=repair, sentences_per_doc=sentences_per_doc)


def _merge_across(spans: List[Tuple[int, int]], protected: Sequence[Tuple[int, int]]) -> List[Tuple[int, int]]:
    """Merge consecutive spans whose gap a protected (start, end) span reaches into."""
    merged = spans[:1]
    for start, end in spans[1:]:
        if any(ps < start and pe > merged[-1][1] for ps, pe in protected):
            merged[-1] = (merged[-1][0], end)
        else:
            merged.append((start, end))
    return merged


@dataclass
class PubTatorDocument:
    """One PubTator document; mention offsets index `text`, which is `title + " " + abstract`."""

    pmid: str
    text: str
    mentions: List[Mention] = field(default_factory=list)  # (start, end, text, label)
    title_length: Optional[int] = None  # the title is text[:title_length], if known
    line: int = 0  # the title's line in the file
    mention_lines: List[int] = field(default_factory=list)  # each mention's line in the file
    # Each mention's concept identifier (6th column; "" when absent): MeSH or OMIM, "-1" for none,
    # "A|B" for a composite mention, "A+B" for a combination of concepts.
    concept_ids: List[str] = field(default_factory=list)


def read_pubtator(
    path: Union[str, Path], type_map: Optional[Dict[str, str]] = None, *, strict: bool = False
) -> List[PubTatorDocument]:
    """Read and validate a PubTator file (`parse_pubtator_block` checks each
    document); relation lines are skipped.

    path (Union[str, Path]): The file.
    type_map (Optional[Dict[str, str]]): Label renames; types not in it are kept, types mapped to ""
        are dropped. Defaults to DEFAULT_TYPE_MAP.
    strict (bool): Also refuse a mention text that differs from `text[start:end]` only by surrounding
        whitespace (NCBI train has one); by default that is accepted and the document's text is used.
    RETURNS (List[PubTatorDocument]): The documents in file order (duplicates kept).
    RAISES (CorpusError): At the first line that breaks the format, naming file and line.
    """
    path = Path(path)
    type_map = DEFAULT_TYPE_MAP if type_map is None else type_map
    docs: List[PubTatorDocument] = []
    try:
        for first, lines in _pubtator_blocks(path):
            block = parse_pubtator_block(path, lines, first)
            docs.append(_pubtator_document(path, block, type_map, strict))
    except PubTatorError as err:
        raise CorpusError(path, err.line, err.message) from None
    if not docs:
        raise CorpusError(path, 0, "no documents found; expected 'PMID|t|title' and 'PMID|a|abstract' lines")
    return docs


def _pubtator_blocks(path: Path) -> Iterator[Tuple[int, List[str]]]:
    """A file's blocks of lines: (first line number, lines), cut at blank
    lines and, as the readers always accepted, at a title line without a
    blank line before it."""
    first = 0
    lines: List[str] = []
    for i, line in _read_lines(path, "PubTator"):
        if lines and (not line.strip() or _is_title(line)):
            yield first, lines
            lines = []
        if line.strip():
            first = first if lines else i
            lines.append(line)
    if lines:
        yield first, lines


def _is_title(line: str) -> bool:
    head = PUBTATOR_HEAD.match(line)
    return head is not None and head.group(2) == "t"


def _pubtator_document(path: Path, block: PubTatorBlock, type_map: Dict[str, str], strict: bool) -> PubTatorDocument:
    """A checked block as a PubTatorDocument: mention texts compared with the
    document's (the gold must agree with the text), types renamed or dropped."""
    text = block.text
    doc = PubTatorDocument(block.pmid, text, title_length=len(block.title), line=block.line)
    for m in block.mentions:
        found = text[m.start : m.end]
        if found != m.text and (strict or found.strip() != m.text.strip()):
            raise CorpusError(
                path, m.line, f"mention {_quote(m.text)} does not equal the text at {m.start}:{m.end}, {_quote(found)}"
            )
        label = type_map.get(m.label, m.label)
        if label:
            doc.mentions.append((m.start, m.end, found, label))
            doc.mention_lines.append(m.line)
            doc.concept_ids.append(m.concept_id)
    return doc


class PubTatorCorpus(_Reader):
    """Read a PubTator file: one Example per document (or sentence), `predicted = nlp.make_doc(text)`
    and the reference a copy with the gold mentions as entities, mapped by `doc.char_span`. Of
    overlapping mentions the longest is kept. After a pass, `n_examples`, `n_docs`, `n_mentions`,
    `n_misaligned` (gold spans off token boundaries), `n_overlapping` (dropped for overlap) and
    `n_dropped` (not mappable under `alignment_mode`) hold its counts; problems are reported once.

    path (Union[str, Path]): The file.
    limit (int): Read at most this many Examples (the first ones); 0 for all.
    shuffle (bool): Shuffle the Examples in memory on each pass (seeded by spaCy's `fix_random_seed`).
    per_sentence (bool): One Example per sentence: the title, then the abstract cut by
        `split_sentences`, never inside a gold mention.
    type_map (Optional[Dict[str, str]]): Label renames; see `read_pubtator`.
    alignment_mode (str): `char_span`'s mode for spans off token boundaries: "strict" (drop them),
        "contract" or "expand".
    strict (bool): Raise CorpusError on a misaligned or overlapping mention, or on a mention text
        that differs from the document's only by surrounding whitespace.
    """

    def __init__(
        self,
        path: Union[str, Path],
        *,
        limit: int = 0,
        shuffle: bool = False,
        per_sentence: bool = False,
        type_map: Optional[Dict[str, str]] = None,
        alignment_mode: str = "expand",
        strict: bool = False,
    ) -> None:
        if alignment_mode not in ("strict", "contract", "expand"):
            raise ValueError(f"alignment_mode: expected 'strict', 'contract' or 'expand', found {alignment_mode!r}")
        self.path = _check_path(path, "PubTator")
        self.limit, self.shuffle, self.per_sentence = limit, shuffle, per_sentence
        self.type_map, self.alignment_mode, self.strict = type_map, alignment_mode, strict
        self._reset()

    def _reset(self) -> None:
        self.n_examples = self.n_docs = self.n_mentions = 0
        self.n_misaligned = self.n_overlapping = self.n_dropped = 0

    def _units(self, doc: PubTatorDocument) -> List[_Unit]:
        mentions = [(s, e, label, ln) for (s, e, _, label), ln in zip(doc.mentions, doc.mention_lines)]
        if not self.per_sentence:
            return [(doc.text, mentions)]
        title = len(doc.text) if doc.title_length is None else doc.title_length
        spans = [trim(doc.text, 0, title)] + [
            (s + title + 1, e + title + 1) for s, e in split_sentences(doc.text[title + 1 :])
        ]
        spans = _merge_across([(s, e) for s, e in spans if e > s], [(m[0], m[1]) for m in mentions])
        # After merging, a mention overlaps one sentence only; clip any whitespace outside it.
        return [
            (
                doc.text[s:e],
                [(max(ms, s) - s, min(me, e) - s, label, ln) for ms, me, label, ln in mentions if ms < e and me > s],
            )
            for s, e in spans
        ]

    def _example(self, nlp: Language, text: str, mentions: List[Tuple[int, int, str, int]]) -> Example:
        predicted = nlp.make_doc(text)
        reference = predicted.copy()
        kept: List[Tuple[int, int, str, int]] = []
        for m in sorted(mentions, key=lambda m: (m[0] - m[1], m[0], m[3])):  # longest first
            if any(k[:3] == m[:3] for k in kept):
                continue  # the same mention on two lines
            self.n_mentions += 1
            if any(m[0] < k[1] and k[0] < m[1] for k in kept):
                if self.strict:
                    raise CorpusError(
                        self.path,
                        m[3],
                        f"mention {_quote(text[m[0] : m[1]])} overlaps a longer one; "
                        "expected no overlaps (strict=True)",
                    )
                self.n_overlapping += 1
            else:
                kept.append(m)
        spans: List[Span] = []
        for start, end, label, line in kept:
            if reference.char_span(start, end) is None:
                if self.strict:
                    raise CorpusError(
                        self.path,
                        line,
                        f"mention {_quote(text[start:end])} is not on token "
                        f"boundaries (strict=True); tokens: {[t.text for t in reference]}",
                    )
                self.n_misaligned += 1
            span = reference.char_span(start, end, label=label, alignment_mode=self.alignment_mode)
            self.n_dropped += span is None
            spans.extend([span] if span is not None else [])
        filtered = filter_spans(spans)  # "expand" can make neighbouring mentions overlap
        self.n_overlapping += len(spans) - len(filtered)
        reference.set_ents(filtered, default="outside")
        return Example(predicted, reference)

    def __call__(self, nlp: Language) -> Iterator[Example]:
        self._reset()
        units: List[Tuple[int, _Unit]] = []
        for d, doc in enumerate(read_pubtator(self.path, self.type_map, strict=self.strict)):
            units.extend((d, unit) for unit in self._units(doc))
            if 1 <= self.limit <= len(units):
                units = units[: self.limit]
                break
        if self.shuffle:
            random.shuffle(units)
        self.n_docs = len({d for d, _ in units})
        for _, (text, mentions) in units:
            self.n_examples += 1
            yield self._example(nlp, text, mentions)
        problems = [
            f"{n} {what}"
            for n, what in [
                (self.n_misaligned, "not on token boundaries"),
                (self.n_overlapping, "dropped for overlapping"),
                (self.n_dropped, f"dropped as unmappable with alignment_mode={self.alignment_mode!r}"),
            ]
            if n
        ]
        if problems:
            self._report(f"{self.path}: of {self.n_mentions} gold mentions, " + ", ".join(problems))


@registry.readers("spacy_fastbioner.PubTatorCorpus.v1")
def create_pubtator_reader(
    path: Path,
    *,
    limit: int = 0,
    shuffle: bool = False,
    per_sentence: bool = False,
    type_map: Optional[Dict[str, str]] = None,
    alignment_mode: str = "expand",
    strict: bool = False,
) -> PubTatorCorpus:
    """Create a PubTatorCorpus reader (see its docstring for the arguments)."""
    return PubTatorCorpus(
        path,
        limit=limit,
        shuffle=shuffle,
        per_sentence=per_sentence,
        type_map=type_map,
        alignment_mode=alignment_mode,
        strict=strict,
    )


class PlainTextCorpus:
    """Read unlabelled text, one text per line (blank lines skipped), for distillation: each Example
    is `Example(nlp.make_doc(s), nlp.make_doc(s))`, its reference without entity annotation.

    path (Union[str, Path]): The file.
    limit (int): Read at most this many Examples (the first ones); 0 for all.
    shuffle (bool): Shuffle the Examples in memory on each pass (seeded by spaCy's `fix_random_seed`).
    min_length (int): Skip texts of fewer tokens.
    max_length (int): Skip texts of more tokens; 0 for no cap.
    split_sentences (bool): Cut each line with `split_sentences` into one Example per sentence.
    """

    def __init__(
        self,
        path: Union[str, Path],
        *,
        limit: int = 0,
        shuffle: bool = False,
        min_length: int = 1,
        max_length: int = 0,
        split_sentences: bool = True,
    ) -> None:
        self.path = _check_path(path, "plain-text")
        self.limit, self.shuffle, self.split_sentences = limit, shuffle, split_sentences
        self.min_length, self.max_length = min_length, max_length

    def _docs(self, nlp: Language) -> Iterator[Doc]:
        n = 0
        for _, line in _read_lines(self.path, "plain-text"):
            for start, end in split_sentences(line) if self.split_sentences else [trim(line, 0, len(line))]:
                doc = nlp.make_doc(line[start:end])
                if len(doc) < max(self.min_length, 1) or len(doc) > (self.max_length or len(doc)):
                    continue
                yield doc
                n += 1
                if n == self.limit:
                    return

    def __call__(self, nlp: Language) -> Iterator[Example]:
        docs: Iterable[Doc] = self._docs(nlp)
        if self.shuffle:
            texts = [doc.text for doc in docs]
            random.shuffle(texts)
            docs = (nlp.make_doc(text) for text in texts)
        for doc in docs:
            yield Example(doc, nlp.make_doc(doc.text))


@registry.readers("spacy_fastbioner.PlainTextCorpus.v1")
def create_plain_text_reader(
    path: Path,
    *,
    limit: int = 0,
    shuffle: bool = False,
    min_length: int = 1,
    max_length: int = 0,
    split_sentences: bool = True,
) -> PlainTextCorpus:
    """Create a PlainTextCorpus reader (see its docstring for the arguments)."""
    return PlainTextCorpus(
        path,
        limit=limit,
        shuffle=shuffle,
        min_length=min_length,
        max_length=max_length,
        split_sentences=split_sentences,
    )


class MixedCorpus:
    """Yield the Examples of a gold corpus and an optional unlabelled one, materialised per pass.

    gold (Callable[[Language], Iterable[Example]]): The annotated corpus.
    unlabelled (Optional[Callable[[Language], Iterable[Example]]]): The unannotated corpus, if any.
    shuffle (bool): Interleave both in random order on each pass; otherwise gold first.
    """

    def __init__(
        self,
        gold: Callable[[Language], Iterable[Example]],
        unlabelled: Optional[Callable[[Language], Iterable[Example]]] = None,
        *,
        shuffle: bool = True,
    ) -> None:
        self.gold, self.unlabelled, self.shuffle = gold, unlabelled, shuffle

    def __call__(self, nlp: Language) -> Iterator[Example]:
        examples = list(self.gold(nlp)) + (list(self.unlabelled(nlp)) if self.unlabelled is not None else [])
        if self.shuffle:
            random.shuffle(examples)
        yield from examples


@registry.readers("spacy_fastbioner.MixedCorpus.v1")
def create_mixed_reader(
    gold: Callable[[Language], Iterable[Example]],
    unlabelled: Optional[Callable[[Language], Iterable[Example]]] = None,
    *,
    shuffle: bool = True,
) -> MixedCorpus:
    """Create a MixedCorpus reader (see its docstring for the arguments)."""
    return MixedCorpus(gold, unlabelled, shuffle=shuffle)
