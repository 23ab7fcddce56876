"""Fuzzy candidate search: nearest KB names by cosine over character 3-gram TF-IDF vectors.

The vectors come from scikit-learn's `HashingVectorizer` (3-grams of each word padded with
spaces, as scispaCy's linker does) weighted by inverse document frequency. Hashing instead of
`TfidfVectorizer` keeps no vocabulary: the index is two arrays and the IDF vector, which
serialise without pickle, and a MeSH-sized KB needs no dict of a million 3-grams in memory.

The search is a sparse product with an inverted index (features x names, CSR) and a top-k per
row. `project/scripts/linking_benchmark.py` compares it with scikit-learn's
`NearestNeighbors(algorithm="brute", metric="cosine")`: the same neighbours, far faster on
sparse vectors, since brute force builds a dense block of distances to every name.
"""

from dataclasses import dataclass
from typing import TYPE_CHECKING, Dict, List, Optional, Sequence, Tuple

import numpy as np
from scipy import sparse

if TYPE_CHECKING:
    from sklearn.feature_extraction.text import HashingVectorizer


@dataclass(frozen=True)
class Candidate:
    """A concept that a mention may denote.

    entity_ (str): The concept identifier, e.g. "D009369", or "D001943|D010051" for a
        composite name that a corpus links to two concepts.
    alias_ (str): The normal form of the KB name that matched.
    similarity (float): 1.0 for an exact match of the normal form, else the cosine similarity.
    prior_prob (float): The concept's share of the alias's occurrences in the sources.
    score (float): The link score: the KB's ranker's probability that the candidate is right
        (`kb.ranking`), or the similarity for a KB without a ranker.
    match (str): How it was found: "exact" (the normal forms are equal), "stem" (equal without
        derivational suffixes, `names.stem_key`; similarity STEM_SIMILARITY), "variant" (a
        variant of the mention's normal form is the alias, `names.variants`; similarity
        VARIANT_SIMILARITY), "ngram", or
        "head" (the alias is the mention's last words, found by exact match; its cosine).
    """

    entity_: str
    alias_: str
    similarity: float
    prior_prob: float
    score: float
    match: str = "exact"


N_FEATURES = 2**18  # about 0.1% of 3-gram pairs collide at MeSH's ~60k distinct 3-grams
NGRAM = 3
# A 3-gram in more names than this is left out of the first pass of a search (see `search`):
# on a MeSH-sized KB it keeps the product to a few dozen postings per query.
MAX_POSTINGS = 5000


def l2_normalize(matrix: sparse.spmatrix) -> sparse.csr_matrix:
    """Rows scaled to unit length (scikit-learn's `normalize`, imported here: the CLI loads
    this package on every `spacy` command, and scikit-learn takes a while to import)."""
    from sklearn.preprocessing import normalize

    return normalize(matrix)


def make_vectorizer(n_features: int = N_FEATURES, ngram: int = NGRAM) -> "HashingVectorizer":
    """The stateless vectorizer of KB names and mentions (texts already normalised).

    n_features (int): The number of hashed features.
    ngram (int): The character n-gram length.
    RETURNS (HashingVectorizer): Raw counts, no normalisation, float32.
    """
    from sklearn.feature_extraction.text import HashingVectorizer

    return HashingVectorizer(
        analyzer="char_wb",
        ngram_range=(ngram, ngram),
        n_features=n_features,
        alternate_sign=False,
        norm=None,
        lowercase=False,
        dtype=np.float32,
    )


class CharNgramIndex:
    """An inverted index of L2-normalised TF-IDF vectors of names, searched by sparse product.

    idf (np.ndarray): The IDF weight of each hashed feature (float32, n_features).
    inverted (sparse.csr_matrix): Features x names, the names' vectors transposed.
    ngram (int): The character n-gram length.
    """

    def __init__(self, idf: np.ndarray, inverted: sparse.csr_matrix, ngram: int = NGRAM) -> None:
        self.idf, self.inverted, self.ngram = idf, inverted, ngram
        self._vectorizer = make_vectorizer(len(idf), ngram)
        self._common = np.diff(inverted.indptr) > MAX_POSTINGS  # per 3-gram: skipped in a first pass

    @classmethod
    def build(cls, texts: Sequence[str], *, n_features: int = N_FEATURES, ngram: int = NGRAM) -> "CharNgramIndex":
        """Index names.

        texts (Sequence[str]): The names' normal forms; row i of the index is texts[i].
        n_features (int): The number of hashed features.
        ngram (int): The character n-gram length.
        RETURNS (CharNgramIndex): The index.
        """
        counts = make_vectorizer(n_features, ngram).transform(texts).tocsc()
        df = np.diff(counts.indptr).astype(np.float32)
        # scikit-learn's smoothed IDF (TfidfTransformer(smooth_idf=True)).
        idf = (np.log((1.0 + len(texts)) / (1.0 + df)) + 1.0).astype(np.float32)
        vectors = l2_normalize(counts.tocsr().multiply(idf).tocsr().astype(np.float32))
        return cls(idf, _compact(vectors.T.tocsr()), ngram)

    @property
    def n_rows(self) -> int:
        """The number of indexed names."""
        return int(self.inverted.shape[1])

    def vectors(self, texts: Sequence[str]) -> sparse.csr_matrix:
        """The L2-normalised TF-IDF vectors of texts (normal forms), one row each."""
        counts = self._vectorizer.transform(texts)
        return l2_normalize(counts.multiply(self.idf).tocsr().astype(np.float32))

    def cosines(self, texts: Sequence[str], others: Sequence[str]) -> np.ndarray:
        """The cosine similarity of each text with the other text of its pair.

        texts (Sequence[str]): Normal forms.
        others (Sequence[str]): As many normal forms.
        RETURNS (np.ndarray): float32, one per pair.
        """
        if not len(texts):
            return np.zeros(0, dtype=np.float32)
        products = self.vectors(texts).multiply(self.vectors(others))
        return np.asarray(products.sum(axis=1), dtype=np.float32).ravel()

    def search(
        self, texts: Sequence[str], k: int, *, names: Optional[Sequence[str]] = None
    ) -> List[List[Tuple[int, float]]]:
        """The k nearest names of each text by cosine similarity.

        With `names` (the indexed names' normal forms, row by row) and a large index, the search
        runs in two passes: the product skips the 3-grams found in more than MAX_POSTINGS names
        (their postings make most of its cost, their low IDF little of a cosine), and the best
        2k names of that pass are scored again with every 3-gram. Without `names`, or when no
        3-gram is that common, the product is exact.

        texts (Sequence[str]): Normal forms of the queries.
        k (int): The number of neighbours.
        names (Optional[Sequence[str]]): The indexed names, for the two-pass search.
        RETURNS (List[List[Tuple[int, float]]]): Per text, (row, cosine) pairs, best first;
            names that share no 3-gram with the text are never returned.
        """
        if not len(texts) or not self.n_rows:
            return [[] for _ in texts]
        queries = self.vectors(texts)
        if names is None or not self._common.any():
            return _top_k(queries @ self.inverted, k)
        rare = queries.multiply(~self._common[np.newaxis, :]).tocsr()
        rare.eliminate_zeros()  # the masked 3-grams stay as explicit zeros, and would cost as much
        first = _top_k(rare @ self.inverted, 2 * k)
        query_of = np.repeat(np.arange(len(texts)), [len(hits) for hits in first])
        rows = np.asarray([row for hits in first for row, _ in hits], dtype=np.int64)
        if not len(rows):
            return [[] for _ in texts]
        unique, position = np.unique(rows, return_inverse=True)
        name_vectors = self.vectors([names[row] for row in unique])
        exact = np.asarray(queries[query_of].multiply(name_vectors[position]).sum(axis=1)).ravel()
        pairs = sparse.csr_matrix((exact, (query_of, rows)), shape=(len(texts), self.n_rows))
        return _top_k(pairs, k)

    def to_arrays(self) -> Dict[str, np.ndarray]:
        """The arrays that restore the index with `from_arrays`."""
        return {
            "idf": self.idf,
            "data": self.inverted.data,
            "indices": self.inverted.indices,
            "indptr": self.inverted.indptr,
            "shape": np.asarray(self.inverted.shape, dtype=np.int64),
            "ngram": np.asarray([self.ngram], dtype=np.int64),
        }

    @classmethod
    def from_arrays(cls, arrays: Dict[str, np.ndarray]) -> "CharNgramIndex":
        """Restore an index from `to_arrays`' output."""
        shape = tuple(int(n) for n in arrays["shape"])
        inverted = sparse.csr_matrix((arrays["data"], arrays["indices"], arrays["indptr"]), shape=shape)
        return cls(arrays["idf"], inverted, int(arrays["ngram"][0]))


def _top_k(scores: sparse.spmatrix, k: int) -> List[List[Tuple[int, float]]]:
    """The k best (column, value) pairs of each row of a sparse score matrix, best first."""
    scores = scores.tocsr()
    results: List[List[Tuple[int, float]]] = []
    for i in range(scores.shape[0]):
        start, end = scores.indptr[i], scores.indptr[i + 1]
        rows, values = scores.indices[start:end], scores.data[start:end]
        keep = values > 0
        rows, values = rows[keep], values[keep]
        if len(values) > k:
            top = np.argpartition(-values, k - 1)[:k]
            rows, values = rows[top], values[top]
        order = np.lexsort((rows, -values))  # ties by row, so results do not depend on scipy's order
        results.append([(int(rows[j]), float(values[j])) for j in order])
    return results


def _compact(matrix: sparse.csr_matrix) -> sparse.csr_matrix:
    """int32 indices where they fit: half the memory of scipy's int64 default for a large KB."""
    if matrix.nnz < 2**31 - 1:
        matrix.indices = matrix.indices.astype(np.int32)
        matrix.indptr = matrix.indptr.astype(np.int32)
    return matrix
