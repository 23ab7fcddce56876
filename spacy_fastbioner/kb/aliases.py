"""The built aliases of one entity type: their hashed match keys and stem keys (sorted numpy
arrays, searched by bisection), the alias -> concept counts (CSR-like arrays) and the
character 3-gram index (`candidates.CharNgramIndex`). Keys are 64-bit BLAKE2b hashes: the same
in every process, unlike Python's salted `hash`.
"""

import hashlib
from typing import Dict, List, Tuple

import numpy as np

from .candidates import CharNgramIndex
from .names import stem_key

AliasCounts = Tuple[str, Dict[int, float]]  # an alias's normal form and {entity row: count}


def hash_string(key: str) -> int:
    """A 64-bit hash of a key, the same in every process (Python's `hash` is salted)."""
    return int.from_bytes(hashlib.blake2b(key.encode("utf8"), digest_size=8).digest(), "little")


class TypeIndex:
    """The built aliases of one entity type (see the module docstring)."""

    def __init__(
        self,
        texts: List[str],
        keys: np.ndarray,
        ptr: np.ndarray,
        entities: np.ndarray,
        counts: np.ndarray,
        index: CharNgramIndex,
        stems: np.ndarray,
        stem_rows: np.ndarray,
    ) -> None:
        self.texts, self.keys, self.index = texts, keys, index
        self.ptr, self.entities, self.counts = ptr, entities, counts
        self.stems, self.stem_rows = stems, stem_rows  # sorted stem-key hashes, each with its alias row

    def find(self, key: str) -> int:
        """The row of an alias by its match key, or -1."""
        h = np.uint64(hash_string(key))
        i = int(np.searchsorted(self.keys, h))
        return i if i < len(self.keys) and self.keys[i] == h else -1

    def find_stem(self, key: str) -> List[int]:
        """The rows of the aliases whose stem key this is."""
        h = np.uint64(hash_string(key))
        start, end = np.searchsorted(self.stems, h, side="left"), np.searchsorted(self.stems, h, side="right")
        return [int(r) for r in self.stem_rows[start:end]]

    def concepts(self, row: int) -> List[Tuple[int, float]]:
        """(entity row, count) of an alias row, most frequent first."""
        start, end = int(self.ptr[row]), int(self.ptr[row + 1])
        return [(int(e), float(c)) for e, c in zip(self.entities[start:end], self.counts[start:end])]


def build_type(aliases: Dict[str, AliasCounts]) -> TypeIndex:
    hashes = {key: hash_string(key) for key in aliases}
    items = sorted(aliases.items(), key=lambda item: hashes[item[0]])
    keys = np.asarray([hashes[key] for key, _ in items], dtype=np.uint64)
    ptr, entities, counts = [0], [], []
    for _, (_, counter) in items:
        for entity, count in sorted(counter.items(), key=lambda ec: (-ec[1], ec[0])):
            entities.append(entity)
            counts.append(count)
        ptr.append(len(entities))
    texts = [text for _, (text, _) in items]
    stems = np.asarray([hash_string(stem_key(text)) for text in texts], dtype=np.uint64)
    order = np.argsort(stems, kind="stable").astype(np.int32)
    return TypeIndex(
        texts,
        keys,
        np.asarray(ptr, dtype=np.int64),
        np.asarray(entities, dtype=np.int32),
        np.asarray(counts, dtype=np.float32),
        CharNgramIndex.build(texts),
        stems[order],
        order,
    )


def type_arrays(index: TypeIndex) -> Dict[str, np.ndarray]:
    arrays = {"keys": index.keys, "ptr": index.ptr, "entities": index.entities, "counts": index.counts}
    arrays.update({"stems": index.stems, "stem_rows": index.stem_rows})
    arrays.update({f"ngram_{name}": a for name, a in index.index.to_arrays().items()})
    return arrays


def type_from_arrays(texts: List[str], arrays: Dict[str, np.ndarray]) -> TypeIndex:
    ngram = {name[len("ngram_") :]: a for name, a in arrays.items() if name.startswith("ngram_")}
    if len(arrays["keys"]) != len(texts) or len(arrays["ptr"]) != len(texts) + 1:
        raise ValueError(f"{len(texts)} aliases but {len(arrays['keys'])} keys and {len(arrays['ptr'])} offsets")
    return TypeIndex(
        texts,
        arrays["keys"],
        arrays["ptr"],
        arrays["entities"],
        arrays["counts"],
        CharNgramIndex.from_arrays(ngram),
        arrays["stems"],
        arrays["stem_rows"],
    )
