"""A tokenizer that splits raw biomedical text the way the training corpora were
tokenised.

Every token of the IOB corpora (NCBI-disease, BC5CDR, BC4CHEMD) is a run of
ASCII letters and digits or a single other character: `5-fluorouracil` is
`5 - fluorouracil`, `0.5` is `0 . 5`, `Na(+)/K(+)` is `Na ( + ) / K ( + )`,
Greek and other non-ASCII letters stand alone (`TNF α`, `na ï ve`). The
BioTokenizer applies the same rule to raw text, so a model trained on the IOB
tokens sees the same tokens at inference, and almost every gold entity starts
and ends on a token boundary.
"""

import re
from pathlib import Path
from typing import Any, Callable, Dict, Iterable, Iterator, List, Tuple, Union

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

    def from_bytes(self, bytes_data: bytes, *, exclude: Iterable[str] = SimpleFrozenList()) -> "BioTokenizer":
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

    def to_disk(self, path: Union[str, Path], *, exclude: Iterable[str] = SimpleFrozenList()) -> None:
        """Save the settings to a file.

        path (str / Path): The file to write.
        exclude (Iterable[str]): Ignored.
        """
        ensure_path(path).write_bytes(self.to_bytes(exclude=exclude))

    def from_disk(self, path: Union[str, Path], *, exclude: Iterable[str] = SimpleFrozenList()) -> "BioTokenizer":
        """Load settings saved by `to_disk`.

        path (str / Path): The file to read.
        exclude (Iterable[str]): Ignored.
        RETURNS (BioTokenizer): The tokenizer.
        """
        try:
            return self.from_bytes(ensure_path(path).read_bytes(), exclude=exclude)
        except ValueError as err:
            raise ValueError(f"{path}: {err}") from None
