"""A tokenizer that splits raw biomedical text the way the training corpora were
tokenised, and studies of how well a tokenizer fits gold entity boundaries.

Every token of the IOB corpora (NCBI-disease, BC5CDR, BC4CHEMD) is a run of
ASCII letters and digits or a single other character: `5-fluorouracil` is
`5 - fluorouracil`, `0.5` is `0 . 5`, `Na(+)/K(+)` is `Na ( + ) / K ( + )`,
Greek and other non-ASCII letters stand alone (`TNF α`, `na ï ve`). The
BioTokenizer applies the same rule to raw text, so a model trained on the IOB
tokens sees the same tokens at inference, and almost every gold entity starts
and ends on a token boundary.
"""
import re
from bisect import bisect_right
from collections import Counter
from itertools import accumulate
from pathlib import Path
from typing import Any, Callable, Dict, Iterable, Iterator, List, Sequence, Tuple, Union

import srsly
from spacy.language import Language
from spacy.tokens import Doc
from spacy.util import SimpleFrozenList, ensure_path, registry
from spacy.vocab import Vocab

TOKENIZER_NAME = "spacy_fastbioner.BioTokenizer.v1"
TOKENIZER_VERSION = 1

# A run of ASCII letters and digits, a run of whitespace, or any other single
# character. `\s` and `str.isspace` agree, so whitespace pieces are exactly the
# `\s+` matches.
_TOKEN_RE = re.compile(r"[A-Za-z0-9]+|\s+|.", re.DOTALL)
# Lone surrogates are valid in a Python str but cannot be stored in a Doc.
_SURROGATE_RE = re.compile("[\ud800-\udfff]")


@registry.tokenizers(TOKENIZER_NAME)
def create_bio_tokenizer() -> Callable[[Language], "BioTokenizer"]:
    """Registered function to create a BioTokenizer.

    RETURNS (Callable[[Language], BioTokenizer]): A function that takes the nlp
        object and returns the tokenizer.
    """

    def bio_tokenizer_factory(nlp: Language) -> "BioTokenizer":
        return BioTokenizer(nlp.vocab)

    return bio_tokenizer_factory


def split_words(text: str) -> Tuple[List[str], List[bool]]:
    """Split text into words and trailing-space flags, spaCy style: a single
    space after a token is its trailing whitespace, any other whitespace run
    becomes a whitespace token. `"".join(words with spaces) == text`.

    text (str): The text to split.
    RETURNS (Tuple[List[str], List[bool]]): The words and their `spaces`.
    """
    words: List[str] = []
    spaces: List[bool] = []
    for piece in _TOKEN_RE.findall(text):
        if piece[0].isspace():
            if words and piece[0] == " ":
                # A whitespace run always follows a non-whitespace token.
                spaces[-1] = True
                piece = piece[1:]
                if not piece:
                    continue
        words.append(piece)
        spaces.append(False)
    return words, spaces


class BioTokenizer:
    """Split text into runs of ASCII letters and digits and single other
    characters, keeping whitespace like spaCy does: `doc.text == text` for any
    text, except that a lone surrogate (which spaCy cannot store) becomes
    U+FFFD, so character offsets are always preserved.
    """

    def __init__(self, vocab: Vocab) -> None:
        """Initialize the tokenizer.

        vocab (Vocab): The vocab the docs are created with.
        """
        self.vocab = vocab
        self.cfg: Dict[str, Any] = {"name": TOKENIZER_NAME, "version": TOKENIZER_VERSION}

    def __call__(self, text: str) -> Doc:
        """Tokenize a string.

        text (str): The string to tokenize.
        RETURNS (Doc): The tokenized document.
        """
        if _SURROGATE_RE.search(text):
            text = _SURROGATE_RE.sub("\ufffd", text)
        words, spaces = split_words(text)
        return Doc(self.vocab, words=words, spaces=spaces)

    def pipe(self, texts: Iterable[str], batch_size: int = 1000) -> Iterator[Doc]:
        """Tokenize a stream of texts.

        texts (Iterable[str]): The texts to tokenize.
        batch_size (int): Unused; kept for spaCy's tokenizer API.
        YIELDS (Doc): A sequence of Doc objects, in order.
        """
        for text in texts:
            yield self(text)

    def to_bytes(self, *, exclude: Iterable[str] = SimpleFrozenList()) -> bytes:
        """Serialize the tokenizer's settings (there are no other data).

        exclude (Iterable[str]): Ignored; the vocab is never serialized here.
        RETURNS (bytes): The serialized settings.
        """
        data: bytes = srsly.msgpack_dumps(self.cfg)
        return data

    def from_bytes(
        self, bytes_data: bytes, *, exclude: Iterable[str] = SimpleFrozenList()
    ) -> "BioTokenizer":
        """Load settings serialized by `to_bytes` and check they match this
        tokenizer.

        bytes_data (bytes): The data to load from.
        exclude (Iterable[str]): Ignored.
        RETURNS (BioTokenizer): The tokenizer.
        """
        cfg = srsly.msgpack_loads(bytes_data)
        found = (cfg.get("name"), cfg.get("version")) if isinstance(cfg, dict) else cfg
        if found != (TOKENIZER_NAME, TOKENIZER_VERSION):
            raise ValueError(
                f"Cannot load tokenizer data: expected name and version "
                f"{(TOKENIZER_NAME, TOKENIZER_VERSION)!r}, found {found!r}. Check "
                f"[nlp.tokenizer] in the pipeline's config.cfg."
            )
        self.cfg = dict(sorted(cfg.items()))
        return self

    def to_disk(
        self, path: Union[str, Path], *, exclude: Iterable[str] = SimpleFrozenList()
    ) -> None:
        """Save the settings to a file.

        path (str / Path): The file to write.
        exclude (Iterable[str]): Ignored.
        """
        ensure_path(path).write_bytes(self.to_bytes(exclude=exclude))

    def from_disk(
        self, path: Union[str, Path], *, exclude: Iterable[str] = SimpleFrozenList()
    ) -> "BioTokenizer":
        """Load settings saved by `to_disk`.

        path (str / Path): The file to read.
        exclude (Iterable[str]): Ignored.
        RETURNS (BioTokenizer): The tokenizer.
        """
        try:
            return self.from_bytes(ensure_path(path).read_bytes(), exclude=exclude)
        except ValueError as err:
            raise ValueError(f"{path}: {err}") from None


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

        def inside(pos: int) -> bool:
            i = bisect_right(starts, pos) - 1
            return i >= 0 and starts[i] < pos < ends[i]

        n_docs += 1
        for start, end in spans:
            n_ents += 1
            bad_start, bad_end = inside(start), inside(end)
            cut_start += bad_start
            cut_end += bad_end
            if bad_start or bad_end:
                cut += 1
                if len(examples) < n_examples:
                    toks = [t.text for t in doc if t.idx < end and t.idx + len(t) > start]
                    examples.append((text[start:end], toks))
    cut_pct = 100.0 * cut / max(n_ents, 1)
    return dict(docs=n_docs, entities=n_ents, cut=cut, cut_start=cut_start,
                cut_end=cut_end, cut_pct=cut_pct, examples=examples)


def token_split_study(
    tokens: Iterable[str], make_doc: Callable[[str], Doc]
) -> Dict[str, Any]:
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
    return dict(docs=n_docs, docs_found=found, docs_identical=identical, tokens=n_ours,
                reference_tokens=n_ref, matched=matched,
                precision=matched / max(n_ours, 1), recall=matched / max(n_ref, 1))
