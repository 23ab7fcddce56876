"""`ConceptKB`: concepts, their names per entity type, and candidate search.

Shaped like spaCy's `InMemoryLookupKB` (`add_entity`, `add_alias`, `get_alias_candidates`,
`contains_entity`, `get_size_entities`, `to_disk`, ...), with what it lacks for biomedical
linking: aliases are normalised names kept per entity type (a Disease mention never meets a
Chemical name), and candidates come from exact match on the normal form and then from
nearest neighbours over character 3-gram TF-IDF vectors (`candidates.CharNgramIndex`).

Each type's built aliases are numpy arrays (`aliases.TypeIndex`): exact lookup is a binary
search among hashed keys, so a MeSH-sized KB costs arrays, not millions of Python objects.
"""

import json
from collections import defaultdict
from dataclasses import replace
from pathlib import Path
from typing import Any, Dict, Iterable, List, Optional, Sequence, Tuple, Union

import numpy as np

from .aliases import AliasCounts, TypeIndex, build_type, type_arrays, type_from_arrays
from .candidates import Candidate
from .names import match_key, normalize, stem_key, variants
from .ranking import STOPWORDS, Ranker, pair_features, rank_scores
from .serialize import KBFormatError, arrays_from_msg, arrays_to_msg, dumps, loads, read_npz, write_npz

FORMAT_VERSION = 1
STEM_SIMILARITY = 0.9  # what a match of stem keys counts for without a ranker
VARIANT_SIMILARITY = 0.85  # the same for an exact match of a variant (`names.variants`)


class ConceptKB:
    """Concept identifiers with their names, per entity type ("Disease", "Chemical").

    Names are added with `add_alias` (or `add_names`); the search structures are built on the
    first lookup after a change, or by `build()`.
    """

    def __init__(self) -> None:
        self._reset()

    def _reset(self) -> None:
        self._entities: List[str] = []
        self._entity_rows: Dict[str, int] = {}
        self._freqs: List[int] = []
        # type -> match key -> (normal form, {entity row: count})
        self._pending: Dict[str, Dict[str, AliasCounts]] = defaultdict(dict)
        self._types: Dict[str, TypeIndex] = {}
        self._dirty = False
        self.ranker: Optional[Ranker] = None
        # Where the names came from ({"kind", "file", "names"}), for model cards; `build_kb` fills it.
        self.sources: List[Dict[str, Any]] = []
        self.version = getattr(self, "version", 0) + 1  # changes with every change of the names

    # Entities and aliases, InMemoryLookupKB's way
    def add_entity(self, entity: str, freq: int = 0) -> int:
        """Add a concept, or add to its frequency if it is known.

        entity (str): The concept identifier.
        freq (int): How often the sources mention it.
        RETURNS (int): The concept's row.
        """
        row = self._entity_rows.get(entity)
        if row is None:
            row = self._entity_rows[entity] = len(self._entities)
            self._entities.append(entity)
            self._freqs.append(0)
        self._freqs[row] += freq
        return row

    def add_alias(self, alias: str, entities: Sequence[str], counts: Sequence[float], *, type_: str) -> None:
        """Add a name of concepts of one entity type; adding a name again adds to its counts.

        alias (str): The name as the source writes it; it is stored normalised.
        entities (Sequence[str]): The concepts the name denotes.
        counts (Sequence[float]): How often the name denotes each (its priors, once normalised).
        type_ (str): The entity type, e.g. "Disease".
        """
        if len(entities) != len(counts):
            raise ValueError(f"add_alias({alias!r}): {len(entities)} entities but {len(counts)} counts")
        key = match_key(alias)
        if not key:
            return  # nothing to match on: a name of punctuation only
        _, counter = self._pending[type_].setdefault(key, (normalize(alias), {}))
        for entity, count in zip(entities, counts):
            row = self.add_entity(entity)
            counter[row] = counter.get(row, 0.0) + count
        self._dirty = True
        self.version += 1

    def add_names(self, records: Iterable[Tuple[str, str, str, int]]) -> int:
        """Add (entity, name, type, count) records, e.g. from `kb.sources`.

        records (Iterable[Tuple[str, str, str, int]]): The records.
        RETURNS (int): How many were added.
        """
        n = 0
        for entity, name, type_, count in records:
            self.add_entity(entity, count)
            self.add_alias(name, [entity], [max(count, 1)], type_=type_)
            n += 1
        return n

    def build(self) -> None:
        """Build the search structures of every type changed since the last build."""
        if not self._dirty:
            return
        for type_, pending in self._pending.items():
            self._types[type_] = build_type(self._merge(type_, pending))
        self._pending = defaultdict(dict)
        self._dirty = False

    def _merge(self, type_: str, pending: Dict[str, AliasCounts]) -> Dict[str, AliasCounts]:
        """The pending aliases of a type, together with those already built."""
        built = self._types.get(type_)
        if built is None:
            return pending
        merged: Dict[str, AliasCounts] = {}
        for row, text in enumerate(built.texts):
            merged[match_key(text)] = (text, dict(built.concepts(row)))
        for key, (text, counter) in pending.items():
            into = merged.setdefault(key, (text, {}))[1]
            for entity, count in counter.items():
                into[entity] = into.get(entity, 0.0) + count
        return merged

    # Queries
    @property
    def types(self) -> List[str]:
        """The entity types that have names."""
        self.build()
        return sorted(self._types)

    @property
    def entity_ids(self) -> List[str]:
        """The concept identifiers, in the order they were added."""
        return list(self._entities)

    def get_size_entities(self) -> int:
        """The number of concepts."""
        return len(self._entities)

    def get_size_aliases(self) -> int:
        """The number of (type, normalised name) aliases."""
        self.build()
        return sum(len(t.texts) for t in self._types.values())

    def contains_entity(self, entity: str) -> bool:
        """Whether the concept is in the KB."""
        return entity in self._entity_rows

    def contains_alias(self, alias: str, type_: Optional[str] = None) -> bool:
        """Whether the name's normal form is an alias (of the type, or of any type)."""
        return any(self._types[t].find(match_key(alias)) >= 0 for t in self._search_types(type_))

    def get_entity_freq(self, entity: str) -> int:
        """How often the sources mention the concept (0 if unknown)."""
        row = self._entity_rows.get(entity)
        return 0 if row is None else self._freqs[row]

    def get_alias_candidates(self, alias: str, type_: Optional[str] = None) -> List[Candidate]:
        """The concepts of an exact match of the name's normal form, most frequent first.

        alias (str): A name or a mention's text.
        type_ (Optional[str]): Restrict to the names of this entity type; None for all.
        RETURNS (List[Candidate]): The candidates, score 1.0.
        """
        return self.get_candidates_batch([alias], type_, k=0)[0]

    def get_candidates_batch(
        self, mentions: Sequence[str], type_: Optional[str], *, k: int = 10, fuzzy_after_exact: bool = False
    ) -> List[List[Candidate]]:
        """The best k concepts of each mention: its exact match (similarity 1.0, by prior) or
        else its stem match and the exact matches of its variants (`names.variants`), then the
        nearest names by TF-IDF cosine, each concept once with its best similarity; ordered by
        the ranker's score if the KB has one.

        mentions (Sequence[str]): The mentions' texts.
        type_ (Optional[str]): Restrict to this entity type (an unknown type: all types).
        k (int): Candidates per mention; 0 for the exact matches only.
        fuzzy_after_exact (bool): Search nearest names for mentions with an exact match too
            (for recall@k); by default only the others are searched, which is what the
            ranker is fitted on, and most of the linker's time saved.
        RETURNS (List[List[Candidate]]): Per mention, candidates by descending score.
        """
        results: List[Dict[int, Candidate]] = [{} for _ in mentions]
        texts = [normalize(m) for m in mentions]
        exact = [False] * len(mentions)
        for t in self._search_types(type_):
            index = self._types[t]
            for i, (found, mention, text) in enumerate(zip(results, mentions, texts)):
                row = index.find(text.replace(" ", ""))
                if row >= 0:
                    self._collect(found, index, row, 1.0, "exact")
                    exact[i] = True
                elif text:
                    for row in index.find_stem(stem_key(mention)):
                        self._collect(found, index, row, STEM_SIMILARITY, "stem")
                    for variant in variants(text):
                        row = index.find(variant.replace(" ", ""))
                        if row >= 0:
                            self._collect(found, index, row, VARIANT_SIMILARITY, "variant")
            wanted = [
                text and k and len(results[i]) < k and (fuzzy_after_exact or not exact[i])
                for i, text in enumerate(texts)
            ]
            todo = [i for i, want in enumerate(wanted) if want]
            neighbours = index.index.search([texts[i] for i in todo], k, names=index.texts) if todo else []
            for i, hits in zip(todo, neighbours):
                for row, score in hits:
                    self._collect(results[i], index, row, min(score, 1.0), "ngram")
            heads = [(i, row) for i in todo if not exact[i] for row in [_find_head(index, texts[i])] if row >= 0]
            if heads:
                cosines = index.index.cosines([texts[i] for i, _ in heads], [index.texts[row] for _, row in heads])
                for (i, row), score in zip(heads, cosines):
                    self._collect(results[i], index, row, min(score, 1.0), "head")
        ranked = [sorted(found.values(), key=lambda c: (-c.similarity, -c.prior_prob, c.entity_)) for found in results]
        ranked = [r[:k] if k else r for r in ranked]
        return [self._rank(mention, r) for mention, r in zip(mentions, ranked)] if self.ranker else ranked

    def _rank(self, mention: str, candidates: List[Candidate]) -> List[Candidate]:
        """Candidates scored by the ranker, best first."""
        if not candidates or self.ranker is None:
            return candidates
        freqs = [self.get_entity_freq(c.entity_) for c in candidates]
        probs = rank_scores(self.ranker, pair_features(mention, candidates, freqs))
        scored = [replace(c, score=float(p)) for c, p in zip(candidates, probs)]
        return sorted(scored, key=lambda c: (-c.score, -c.similarity, c.entity_))

    def _collect(self, found: Dict[int, Candidate], index: TypeIndex, row: int, score: float, match: str) -> None:
        concepts = index.concepts(row)
        total = sum(count for _, count in concepts) or 1.0
        for entity, count in concepts:
            prior = count / total
            old = found.get(entity)
            if old is None or (score, prior) > (old.similarity, old.prior_prob):
                found[entity] = Candidate(self._entities[entity], index.texts[row], score, prior, score, match)

    def _search_types(self, type_: Optional[str]) -> List[str]:
        self.build()
        return [type_] if type_ in self._types else sorted(self._types)

    # Serialisation, without pickle
    def _to_parts(self) -> Tuple[Dict[str, Any], Dict[str, np.ndarray]]:
        self.build()
        meta: Dict[str, Any] = {
            "format": FORMAT_VERSION,
            "entities": self._entities,
            "types": {},
            "ranker": self.ranker,
            "sources": self.sources,
        }
        arrays: Dict[str, np.ndarray] = {"freqs": np.asarray(self._freqs, dtype=np.int64)}
        for n, (type_, index) in enumerate(sorted(self._types.items())):
            meta["types"][type_] = {"prefix": f"t{n}_", "aliases": index.texts}
            arrays.update({f"t{n}_{name}": a for name, a in type_arrays(index).items()})
        return meta, arrays

    def _from_parts(self, meta: dict, arrays: Dict[str, np.ndarray], where: str) -> "ConceptKB":
        if not isinstance(meta, dict) or meta.get("format") != FORMAT_VERSION:
            found = meta.get("format") if isinstance(meta, dict) else type(meta).__name__
            raise KBFormatError(f"{where}: expected a ConceptKB of format {FORMAT_VERSION}, found {found!r}")
        try:
            self._reset()  # in place, as spaCy's from_disk does
            self._entities = list(meta["entities"])
            self._entity_rows = {e: i for i, e in enumerate(self._entities)}
            self._freqs = [int(f) for f in arrays["freqs"]]
            self.ranker = _check_ranker(meta.get("ranker"))
            self.sources = [dict(source) for source in meta.get("sources", [])]
            for type_, info in meta["types"].items():
                prefix = info["prefix"]
                parts = {name[len(prefix) :]: a for name, a in arrays.items() if name.startswith(prefix)}
                self._types[type_] = type_from_arrays(list(info["aliases"]), parts)
        except (KeyError, TypeError, ValueError) as err:
            raise KBFormatError(f"{where}: incomplete ConceptKB data ({type(err).__name__}: {err})") from None
        return self

    def to_bytes(self) -> bytes:
        """Serialise the KB to msgpack bytes (no pickle)."""
        meta, arrays = self._to_parts()
        return dumps({"meta": meta, "arrays": arrays_to_msg(arrays)})

    def from_bytes(self, data: bytes) -> "ConceptKB":
        """Load the KB from `to_bytes` output, in place.

        RETURNS (ConceptKB): The KB.
        """
        msg = loads(data, "ConceptKB bytes")
        if not isinstance(msg, dict) or "meta" not in msg or "arrays" not in msg:
            raise KBFormatError("ConceptKB bytes: expected a dict with 'meta' and 'arrays'")
        return self._from_parts(msg["meta"], arrays_from_msg(msg["arrays"], "ConceptKB bytes"), "ConceptKB bytes")

    def to_disk(self, path: Union[str, Path]) -> None:
        """Save the KB to a folder: kb.json (identifiers, aliases) and kb.npz (arrays).

        path (Union[str, Path]): The folder, created if missing.
        """
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        meta, arrays = self._to_parts()
        # The stdlib's JSON writes floats exactly (srsly's ujson rounds the ranker's weights).
        (path / "kb.json").write_text(json.dumps(meta, ensure_ascii=False), encoding="utf8")
        write_npz(path / "kb.npz", arrays)

    def from_disk(self, path: Union[str, Path]) -> "ConceptKB":
        """Load the KB from a folder written by `to_disk`, in place.

        path (Union[str, Path]): The folder.
        RETURNS (ConceptKB): The KB.
        """
        path = Path(path)
        for name in ("kb.json", "kb.npz"):
            if not (path / name).is_file():
                raise KBFormatError(f"{path / name}: file not found; expected a ConceptKB folder (kb.json, kb.npz)")
        try:
            meta = json.loads((path / "kb.json").read_text(encoding="utf8"))
        except (ValueError, UnicodeDecodeError) as err:
            raise KBFormatError(f"{path / 'kb.json'}: expected JSON written by ConceptKB, found: {err}") from None
        return self._from_parts(meta, read_npz(path / "kb.npz"), str(path))


def _find_head(index: TypeIndex, text: str) -> int:
    """The alias row of the longest proper word suffix of a normal form ("sporadic wilm
    neoplasm" -> "wilm neoplasm"; a leading stop word is skipped), or -1."""
    words = text.split()
    for start in range(1, len(words)):
        if words[start] in STOPWORDS:
            continue
        row = index.find("".join(words[start:]))
        if row >= 0:
            return row
    return -1


def _check_ranker(ranker: object) -> Optional[Ranker]:
    """The ranker weights of a KB's JSON, checked: None, or {"coef": n floats, "intercept": [b]},
    n at most the number of FEATURES (a KB saved before features were added keeps its scores)."""
    from .ranking import FEATURES

    if ranker is None:
        return None
    if (
        not isinstance(ranker, dict)
        or not 0 < len(ranker.get("coef", [])) <= len(FEATURES)
        or len(ranker.get("intercept", [])) != 1
    ):
        raise ValueError(
            f"ranker: expected {{'coef': up to {len(FEATURES)} floats, 'intercept': [float]}}, found {ranker!r}"
        )
    return {"coef": [float(c) for c in ranker["coef"]], "intercept": [float(ranker["intercept"][0])]}
