"""The chunk cache of the runtime's tokenizer (runtime/wordpiece_cache.py)
gives what the Rust tokenizer gives on whole texts."""

import random
from itertools import chain

import numpy
import pytest
from helpers import make_cased_tiny_bert

# Pieces that stress the assumption that a text's wordpieces are those of its
# chunks between spaces: other whitespace inside a chunk, a combining accent
# right after a space, control and CJK characters, a word past WordPiece's
# 100 characters, special tokens written in the text, runs of spaces.
PIECES = [
    "Cancer",
    "of",
    "the",
    "colon",
    "5-FU",
    "(",
    ")",
    "ΔF508",
    "β-catenin",
    "naïve",
    "Éire",
    "\u0301a",
    "\t",
    "\n",
    "\u00a0",
    "\u2003",
    "\x07",
    "\x1c",
    "中文",
    "😀",
    "[PAD]",
    "[MASK]",
    "x" * 120,
    "e.g.",
    "",
]


def _texts(seed: int, n: int = 40):
    rng = random.Random(seed)
    texts = ["", " ", "  ", " a", "a ", "a  b"]
    for _ in range(n):
        words = [rng.choice(PIECES) for _ in range(rng.randint(0, 30))]
        texts.append("".join(w + rng.choice(["", " ", " ", "  "]) for w in words))
    return texts


def _rust(tokenizer, texts):
    backend = tokenizer.backend_tokenizer
    backend.no_truncation()
    backend.no_padding()
    encodings = backend.encode_batch(texts, add_special_tokens=True)
    lengths = [len(e.ids) for e in encodings]
    rows = [(i, s, e) for enc in encodings for i, (s, e) in zip(enc.ids, enc.offsets)]
    type_ids = list(chain.from_iterable(e.type_ids for e in encodings))
    return lengths, rows, type_ids


@pytest.fixture(params=["uncased", "cased"])
def tokenizer(request, tiny_bert, tmp_path):
    from transformers import AutoTokenizer

    path = make_cased_tiny_bert(tmp_path / "cased") if request.param == "cased" else tiny_bert
    return AutoTokenizer.from_pretrained(str(path), use_fast=True)


@pytest.mark.parametrize("max_entries", [100_000, 7])
def test_cache_equals_the_rust_tokenizer(tokenizer, max_entries):
    """Ids, offsets, type ids and lengths of every text, batch after batch
    (new chunks, then known ones; with a small bound, the cache is emptied
    in between)."""
    from spacy_fastbioner.runtime.wordpiece_cache import WordpieceCache, chunks_are_exact

    assert chunks_are_exact(tokenizer)
    cache = WordpieceCache(tokenizer, max_entries=max_entries)
    for seed in (0, 1, 0):
        texts = _texts(seed)
        lengths, rows, type_ids = cache.encode(texts)
        expected_lengths, expected_rows, expected_types = _rust(tokenizer, texts)
        assert lengths.tolist() == expected_lengths
        assert [tuple(r) for r in rows.tolist()] == expected_rows
        assert type_ids.tolist() == expected_types
        assert cache.wordpiece_strings(rows[:, 0]) == tokenizer.convert_ids_to_tokens([r[0] for r in expected_rows])
        assert len(cache) <= max(max_entries, len({c for t in texts for c in t.split(" ")}))
    assert sum(lengths) > 3 * len(texts), "the texts gave few wordpieces: the check would be weak"


def test_tokenize_texts_takes_the_cache(tokenizer):
    """`tokenize_texts` with and without the cache give the same batch."""
    from spacy_fastbioner.runtime.fast_forward import tokenize_texts
    from spacy_fastbioner.runtime.wordpiece_cache import WordpieceCache

    texts = _texts(2)
    plain, plain_offsets = tokenize_texts(tokenizer, texts, use_cache=False)
    for _ in range(2):
        cached, cached_offsets = tokenize_texts(tokenizer, texts)
        numpy.testing.assert_array_equal(cached.input_ids, plain.input_ids)
        numpy.testing.assert_array_equal(cached.attention_mask, plain.attention_mask)
        numpy.testing.assert_array_equal(cached.token_type_ids, plain.token_type_ids)
        numpy.testing.assert_array_equal(cached_offsets, plain_offsets)
        assert cached.strings == plain.strings
        assert cached.lengths == plain.lengths
    cache = WordpieceCache.for_tokenizer(tokenizer)
    assert cache is not None and len(cache) > 10
    assert WordpieceCache.for_tokenizer(tokenizer) is cache


def test_cache_refuses_tokenizers_it_cannot_vouch_for(tiny_bert):
    """A special token that strips the spaces around it, a tokenizer that does
    not split at whitespace the BERT way, or left padding: no cache, and
    `tokenize_texts` still gives the Rust tokenizer's wordpieces."""
    from tokenizers import AddedToken, Tokenizer, models, pre_tokenizers
    from transformers import AutoTokenizer, PreTrainedTokenizerFast

    from spacy_fastbioner.runtime.fast_forward import tokenize_texts
    from spacy_fastbioner.runtime.wordpiece_cache import WordpieceCache, chunks_are_exact

    stripping = AutoTokenizer.from_pretrained(str(tiny_bert), use_fast=True)
    stripping.add_special_tokens({"additional_special_tokens": [AddedToken("<gene>", lstrip=True)]})
    assert not chunks_are_exact(stripping)
    assert WordpieceCache.for_tokenizer(stripping) is None
    text = "the <gene> of  <gene>x"
    found, offsets = tokenize_texts(stripping, [text])
    lengths, rows, _ = _rust(stripping, [text])
    assert found.input_ids[0].tolist() == [r[0] for r in rows]
    assert offsets[0].tolist() == [[r[1], r[2]] for r in rows]

    vocab = {"[UNK]": 0, "[PAD]": 1, "a": 2, "b": 3}
    backend = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    backend.pre_tokenizer = pre_tokenizers.Metaspace()
    word_level = PreTrainedTokenizerFast(tokenizer_object=backend, unk_token="[UNK]", pad_token="[PAD]")
    assert not chunks_are_exact(word_level)

    left = AutoTokenizer.from_pretrained(str(tiny_bert), use_fast=True, padding_side="left")
    assert not chunks_are_exact(left)
    assert chunks_are_exact(AutoTokenizer.from_pretrained(str(tiny_bert), use_fast=True))
