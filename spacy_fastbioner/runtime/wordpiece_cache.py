"""A BERT tokenizer's wordpieces of a batch of texts, with the wordpieces of
each space-separated chunk of text cached.

A BERT tokenizer (BertNormalizer, BertPreTokenizer, WordPiece) treats each
character on its own when it normalizes, and splits at every whitespace
character before it cuts words into wordpieces; so the wordpieces of a text
are those of its chunks between ASCII spaces, in order, with the chunks'
offsets moved by their place in the text. Biomedical text repeats its words,
and at int8 speeds the Rust tokenizer took more time than any other step of
the spaCy side (`pipeline_profile.py`); a dict lookup per chunk and a few
NumPy calls per batch cost far less. `WordpieceCache.for_tokenizer` returns
None for a tokenizer whose steps it cannot vouch for in that way, and
`fast_forward.tokenize_texts` then calls the Rust tokenizer on whole texts.
The tests compare both on varied text.
"""

import json
import weakref
from itertools import chain
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy

from .ragged_index import concat_ranges

# Normalizers that map each character on its own (no context, no stripping
# at the ends of the text).
CHAR_NORMALIZERS = ("BertNormalizer", "Lowercase", "NFD", "StripAccents")
MAX_ENTRIES = 100_000

_caches: "weakref.WeakKeyDictionary[Any, Optional[WordpieceCache]]" = weakref.WeakKeyDictionary()


class WordpieceCache:
    """The wordpieces (ids and character offsets) of space-separated chunks of
    text, as the tokenizer gives them without special tokens, bounded at
    `max_entries` chunks (emptied when full: cheap, and the frequent chunks
    come back at once). The rows of all chunks live in one array, so that a
    batch gathers its wordpieces in one NumPy call.
    """

    def __init__(self, tokenizer: Any, max_entries: int = MAX_ENTRIES) -> None:
        """Initialize the cache. Use `for_tokenizer`, which checks that the
        tokenizer is one the chunks give exact results for.

        tokenizer: A Hugging Face fast tokenizer.
        max_entries (int): The most chunks kept.
        """
        self.backend = tokenizer.backend_tokenizer
        self.max_entries = max_entries
        self.strings: List[str] = tokenizer.convert_ids_to_tokens(list(range(len(tokenizer))))
        self.prefix, self.suffix, self.type_id = special_tokens(self.backend)
        self._clear()

    @classmethod
    def for_tokenizer(cls, tokenizer: Any) -> Optional["WordpieceCache"]:
        """The tokenizer's cache (one per tokenizer object), or None if its
        wordpieces are not always those of its chunks between spaces."""
        try:
            return _caches[tokenizer]
        except KeyError:
            pass
        except TypeError:  # not weakly referenceable: never cached
            return None
        cache = cls(tokenizer) if chunks_are_exact(tokenizer) else None
        _caches[tokenizer] = cache
        return cache

    def __len__(self) -> int:
        return len(self._index)

    def encode(self, texts: Sequence[str]) -> Tuple[numpy.ndarray, numpy.ndarray, numpy.ndarray]:
        """The wordpieces of each text with the special tokens, as
        `encode_batch(texts, add_special_tokens=True)` gives them.

        texts (Sequence[str]): The texts.
        RETURNS (Tuple[numpy.ndarray, numpy.ndarray, numpy.ndarray]): Per text
            its number of wordpieces; the wordpieces of all texts, one after
            another, as rows (id, start, end) of character offsets in their
            text; and their token type ids.
        """
        chunk_lists = [text.split(" ") for text in texts]
        chunks = list(chain.from_iterable(chunk_lists))
        missing = set(chunks).difference(self._index)
        if missing:
            if len(self._index) + len(missing) > self.max_entries:
                self._clear()
                missing = set(chunks)
            self._add(list(missing))
        entries = numpy.fromiter(map(self._index.__getitem__, chunks), dtype="int64", count=len(chunks))
        counts = self._counts[entries]
        content = self._rows[concat_ranges(self._starts[entries], counts)]
        n_chunks = numpy.fromiter(map(len, chunk_lists), dtype="int64", count=len(chunk_lists))
        first_chunk = numpy.cumsum(n_chunks) - n_chunks
        # Each chunk starts one character (the space) after the previous one ends.
        steps = numpy.fromiter(map(len, chunks), dtype="int64", count=len(chunks)) + 1
        ends = numpy.cumsum(steps)
        starts = ends - steps - numpy.repeat(ends[first_chunk] - steps[first_chunk], n_chunks)
        content[:, 1:] += numpy.repeat(starts, counts)[:, None]
        per_text = numpy.add.reduceat(counts, first_chunk) if len(texts) else counts[:0]
        n_prefix, n_suffix = len(self.prefix), len(self.suffix)
        lengths = per_text + n_prefix + n_suffix
        text_start = numpy.cumsum(lengths) - lengths
        rows = numpy.zeros((int(lengths.sum()), 3), dtype="int64")
        rows[concat_ranges(text_start + n_prefix, per_text)] = content
        type_ids = numpy.full(len(rows), self.type_id, dtype="int64")
        for j, (wp_id, type_id) in enumerate(self.prefix):
            rows[text_start + j, 0] = wp_id
            type_ids[text_start + j] = type_id
        for j, (wp_id, type_id) in enumerate(self.suffix):
            rows[text_start + n_prefix + per_text + j, 0] = wp_id
            type_ids[text_start + n_prefix + per_text + j] = type_id
        return lengths, rows, type_ids

    def wordpiece_strings(self, ids: numpy.ndarray) -> List[str]:
        """The wordpieces' strings, as the tokenizer's encodings give them."""
        return list(map(self.strings.__getitem__, ids.tolist()))

    def _clear(self) -> None:
        self._index: Dict[str, int] = {}
        self._starts = numpy.zeros(0, dtype="int64")
        self._counts = numpy.zeros(0, dtype="int64")
        self._rows = numpy.zeros((0, 3), dtype="int64")
        self._n_rows = 0

    def _add(self, chunks: List[str]) -> None:
        encodings = self.backend.encode_batch(chunks, add_special_tokens=False)
        counts = numpy.fromiter((len(e.ids) for e in encodings), dtype="int64", count=len(encodings))
        total = int(counts.sum())
        rows = numpy.empty((total, 3), dtype="int64")
        rows[:, 0] = numpy.fromiter(chain.from_iterable(e.ids for e in encodings), dtype="int64", count=total)
        rows[:, 1:] = numpy.fromiter(
            chain.from_iterable(chain.from_iterable(e.offsets for e in encodings)), dtype="int64", count=2 * total
        ).reshape((-1, 2))
        first_entry, first_row = len(self._index), self._n_rows
        self._starts = _grow(self._starts, first_entry, numpy.cumsum(counts) - counts + first_row)
        self._counts = _grow(self._counts, first_entry, counts)
        self._rows = _grow(self._rows, first_row, rows)
        self._n_rows += total
        self._index.update(zip(chunks, range(first_entry, first_entry + len(chunks))))


def _grow(array: numpy.ndarray, used: int, new: numpy.ndarray) -> numpy.ndarray:
    """`array` with `new` written after its first `used` rows, its capacity
    doubled when it runs out (amortised constant time per row)."""
    if used + len(new) > len(array):
        grown = numpy.zeros((max(2 * len(array), used + len(new), 64),) + array.shape[1:], dtype=array.dtype)
        grown[:used] = array[:used]
        array = grown
    array[used : used + len(new)] = new
    return array


def special_tokens(backend: Any) -> Tuple[List[Tuple[int, int]], List[Tuple[int, int]], int]:
    """What the tokenizer's post-processor adds to a single text: the (id,
    type id) of the special tokens before and after the text's wordpieces,
    and the type id of the text's own wordpieces.

    RETURNS: (prefix, suffix, type_id).
    """
    probe = "a"
    plain = backend.encode(probe, add_special_tokens=False)
    full = backend.encode(probe, add_special_tokens=True)
    n = len(plain.ids)
    starts = [k for k in range(len(full.ids) - n + 1) if full.ids[k : k + n] == plain.ids]
    if n == 0 or not starts:
        raise ValueError(f"the tokenizer's post-processor does not keep the wordpieces of {probe!r} in one piece")
    k = starts[0]
    pairs = list(zip(full.ids, full.type_ids))
    prefix, suffix = pairs[:k], pairs[k + n :]
    empty = backend.encode("", add_special_tokens=True)
    if list(zip(empty.ids, empty.type_ids)) != prefix + suffix:
        raise ValueError("the tokenizer's special tokens for an empty text differ from those around a text")
    return prefix, suffix, full.type_ids[k]


def chunks_are_exact(tokenizer: Any) -> bool:
    """Whether the tokenizer's wordpieces of a text are always those of its
    chunks between ASCII spaces: a BERT normalizer (or other normalizers that
    map each character on its own), the BERT pre-tokenizer, a WordPiece
    model, no added token that holds or strips whitespace, and special tokens
    only before and after the text."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is None or getattr(tokenizer, "padding_side", "") != "right":
        return False
    try:
        spec = json.loads(backend.to_str())
    except Exception:  # a backend that cannot describe itself
        return False
    normalizer = spec.get("normalizer") or {"type": "Sequence", "normalizers": []}
    normalizers = normalizer.get("normalizers", []) if normalizer.get("type") == "Sequence" else [normalizer]
    if not all(n.get("type") in CHAR_NORMALIZERS for n in normalizers):
        return False
    if (spec.get("pre_tokenizer") or {}).get("type") != "BertPreTokenizer":
        return False
    if (spec.get("model") or {}).get("type") != "WordPiece":
        return False
    for added in spec.get("added_tokens", []):
        content = added.get("content", "")
        if added.get("lstrip") or added.get("rstrip") or not content or any(c.isspace() for c in content):
            return False
    try:
        special_tokens(backend)
    except ValueError:
        return False
    return True
