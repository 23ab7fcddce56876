"""The `fastbioner_linker` component: each entity's concept identifier (`ent.kb_id_`) and score
(`ent._.kb_score`), from a `ConceptKB` stored inside the pipeline.

After the NER (and `fastbioner_abbreviations`, if present), for each entity:
- the candidates are the KB names of the entity's label ("Disease", "Chemical"): an exact match
  of the normal form, else exact matches of its stem and of its variants (`kb.names.variants`:
  "X disease" / "X syndrome", "X of the Y" / "Y X", "type II" / "type 2", a salt's ion left
  out) and the nearest names by character 3-gram TF-IDF cosine;
- a short form defined in the doc ("adenomatous polyposis coli (APC)") takes the concept of its
  long form, when the long form links;
- a composite mention ("breast and ovarian cancer") that the KB does not hold whole gets one
  identifier per conjunct, joined with "|" as NCBI-disease writes them;
- below `threshold` the entity stays unlinked (NIL: `kb_id_` ""), rather than linked wrongly;
- with `doc_consistency`, an entity left NIL takes the best of its candidates that another
  entity of the doc is linked to (a doc that says "prostate cancer" means it by "prostate
  carcinoma" too), if that candidate scores at least DOC_FLOOR (DOC_COSINE_FLOOR without a
  ranker); an entity linked to a concept that no other entity of the doc has takes such a
  candidate if it scores the threshold too.
"""

import json
from pathlib import Path
from typing import Any, Callable, Dict, Iterable, Iterator, List, Optional, Sequence, Tuple, Union

from spacy import util
from spacy.language import Language
from spacy.scorer import Scorer
from spacy.tokens import Doc, Span
from spacy.training import Example

from ..kb.lookup import Candidate, ConceptKB
from ..kb.names import split_composite
from .abbreviations import find_abbreviations, is_short_form

NIL = ""
# The default least score of a link with a fitted ranker (a probability): the best mean
# doc-level concept F over NCBI-disease, BC5CDR chemicals and diseases in cross-validation on
# their training documents alone (`linking-threshold`, results/linking/threshold-cv.json).
RANKED_THRESHOLD = 0.4
# Without a ranker the score is the cosine of the 3-gram vectors: a conservative cut, not
# fitted (a KB from vocabularies alone has no annotated mentions to fit one on).
COSINE_THRESHOLD = 0.8
SCORE_EXTENSION = "kb_score"
if not Span.has_extension(SCORE_EXTENSION):
    Span.set_extension(SCORE_EXTENSION, default=None)

# The least score of a candidate that document consistency picks because another entity of
# the doc has its concept (see `FastBioLinker._consistent`).
DOC_FLOOR = 0.02
# The same for a KB without a ranker, on the cosine's scale: conservative, not fitted.
DOC_COSINE_FLOOR = 0.6

Link = Tuple[str, float]  # (identifier or NIL, score)
CACHE_SIZE = 100_000  # (label, text) queries whose best candidate the linker remembers


@Language.factory(
    "fastbioner_linker",
    requires=["doc.ents"],
    assigns=["token.ent_kb_id", "span._.kb_score"],
    default_config={
        "threshold": None,
        "n_candidates": 10,
        "resolve_abbreviations": True,
        "split_composites": True,
        "doc_consistency": True,
        "abbreviations_key": "abbreviations",
        "scorer": {"@scorers": "spacy_fastbioner.linker_scorer.v1"},
    },
    default_score_weights={"nel_micro_f": 1.0, "nel_micro_p": 0.0, "nel_micro_r": 0.0},
)
def make_fastbioner_linker(
    nlp: Language,
    name: str,
    threshold: Optional[float],
    n_candidates: int,
    resolve_abbreviations: bool,
    split_composites: bool,
    doc_consistency: bool,
    abbreviations_key: str,
    scorer: Optional[Callable],
) -> "FastBioLinker":
    """Create a linker with an empty KB: fill it with `set_kb` or `initialize(kb_path=...)`.

    threshold (Optional[float]): The least score of a link; below it an entity stays NIL. None:
        RANKED_THRESHOLD (a probability) for a KB with a ranker, COSINE_THRESHOLD without.
    n_candidates (int): Candidates searched per entity.
    resolve_abbreviations (bool): Link a short form defined in the doc through its long form.
    split_composites (bool): Split coordinated mentions into one concept per conjunct.
    doc_consistency (bool): Link an entity that is NIL (or whose concept no other entity of the
        doc has) to its best candidate scoring `doc_floor` (the threshold) or more whose concept
        another entity of the doc is linked to.
    abbreviations_key (str): The `doc.spans` key where `fastbioner_abbreviations` stores the
        short forms (with `span._.long_form`); without it, the linker finds them itself.
    scorer (Optional[Callable]): Scores the links (`nel_micro_p/r/f`).
    """
    return FastBioLinker(
        nlp.vocab,
        name,
        threshold=threshold,
        n_candidates=n_candidates,
        resolve_abbreviations=resolve_abbreviations,
        split_composites=split_composites,
        doc_consistency=doc_consistency,
        abbreviations_key=abbreviations_key,
        scorer=scorer,
    )


@util.registry.scorers("spacy_fastbioner.linker_scorer.v1")
def make_linker_scorer() -> Callable:
    """spaCy's link scorer, NIL being an empty `kb_id_` (or "NIL", or the corpora's "-1")."""

    def score(examples: Iterable[Example], **kwargs: Any) -> Dict[str, Any]:
        return Scorer.score_links(examples, negative_labels=[NIL, "NIL", "-1"], **kwargs)

    return score


class FastBioLinker:
    """Link entities to the concepts of a `ConceptKB` (see the module docstring).

    Not trainable: `initialize` only loads the KB. The KB is saved with the pipeline
    (`kb/kb.json`, `kb/kb.npz`); loading it runs no pickle code.
    """

    def __init__(
        self,
        vocab: Any,
        name: str = "fastbioner_linker",
        *,
        threshold: Optional[float] = None,
        n_candidates: int = 10,
        resolve_abbreviations: bool = True,
        split_composites: bool = True,
        doc_consistency: bool = True,
        abbreviations_key: str = "abbreviations",
        scorer: Optional[Callable] = None,
    ) -> None:
        """Initialize the component (see `make_fastbioner_linker` for the settings)."""
        if threshold is not None and not 0.0 <= threshold <= 1.0:
            raise ValueError(f"{name}: threshold: expected a value in [0, 1], found {threshold}")
        if n_candidates < 1:
            raise ValueError(f"{name}: n_candidates: expected an integer >= 1, found {n_candidates}")
        self.vocab, self.name, self.scorer = vocab, name, scorer
        cfg = {
            "threshold": threshold,
            "n_candidates": n_candidates,
            "resolve_abbreviations": resolve_abbreviations,
            "split_composites": split_composites,
            "doc_consistency": doc_consistency,
            "abbreviations_key": abbreviations_key,
        }
        self.cfg: Dict[str, Any] = dict(sorted(cfg.items()))
        self.kb = ConceptKB()
        self._cache: Dict[Tuple[str, str], List[Candidate]] = {}  # (label, text) -> candidates
        self._cache_version = -1  # the KB's version that the cache holds results of

    def set_kb(self, kb: ConceptKB) -> None:
        """Use this KB.

        kb (ConceptKB): The KB, e.g. from `build_kb`.
        """
        self.kb = kb
        self._cache.clear()

    def initialize(
        self,
        get_examples: Optional[Callable[[], Iterable[Example]]] = None,
        *,
        nlp: Optional[Language] = None,
        kb_path: Optional[Union[str, Path]] = None,
    ) -> None:
        """Load the KB from a folder written by `build_kb` (`[initialize.components.<name>]`
        `kb_path = ...`); without one, keep the KB that is set.

        get_examples (Optional[Callable[[], Iterable[Example]]]): Unused: nothing is trained.
        nlp (Optional[Language]): The pipeline.
        kb_path (Optional[Union[str, Path]]): The KB folder.
        """
        if kb_path is not None:
            self.set_kb(ConceptKB().from_disk(kb_path))

    # Prediction
    def __call__(self, doc: Doc) -> Doc:
        """Link the entities of a doc.

        doc (Doc): The doc, with entities.
        RETURNS (Doc): The same doc, `ent.kb_id_` and `ent._.kb_score` set.
        """
        self.set_annotations([doc], self.predict([doc]))
        return doc

    def pipe(self, stream: Iterable[Doc], *, batch_size: int = 128) -> Iterator[Doc]:
        """Link the entities of a stream of docs, searching the KB once per batch.

        stream (Iterable[Doc]): The docs.
        batch_size (int): Docs per batch.
        YIELDS (Doc): The docs, in order.
        """
        for docs in util.minibatch(stream, size=batch_size):
            self.set_annotations(docs, self.predict(docs))
            yield from docs

    def predict(self, docs: Sequence[Doc]) -> List[List[Link]]:
        """The link of every entity of each doc, without changing the docs.

        docs (Sequence[Doc]): The docs.
        RETURNS (List[List[Link]]): Per doc, (identifier or "", score) per entity in `doc.ents`.
        """
        return self.link_spans(docs, [list(doc.ents) for doc in docs])

    def link_spans(self, docs: Sequence[Doc], spans: Sequence[Sequence[Span]]) -> List[List[Link]]:
        """Link any spans of each doc (e.g. gold mentions that overlap, for evaluation).

        docs (Sequence[Doc]): The docs.
        spans (Sequence[Sequence[Span]]): Per doc, labelled spans.
        RETURNS (List[List[Link]]): Per doc, (identifier or "", score) per span.
        """
        plans = self._plans(docs, spans)
        tops = self._tops(plans)
        return [self._link_doc(doc_plans, tops) for doc_plans in plans]

    def _link_doc(self, plans: List[Tuple[Any, ...]], tops: Dict[Tuple[str, str], List[Candidate]]) -> List[Link]:
        """The links of a doc's spans: each decided alone, then made consistent in the doc."""
        links = [self._decide(plan, tops) for plan in plans]
        return self._consistent(plans, links, tops) if self.cfg.get("doc_consistency", True) else links

    def _consistent(
        self, plans: List[Tuple[Any, ...]], links: List[Link], tops: Dict[Tuple[str, str], List[Candidate]]
    ) -> List[Link]:
        """Document consistency: a span left NIL takes its best candidate scoring `doc_floor` or
        more whose concept another span of the doc is linked to; a span linked to a concept that
        no other span has takes such a candidate if it scores the threshold or more. Composite spans keep their links; the choices are made from
        the links decided alone, so that the order of the spans does not matter."""
        counts: Dict[str, int] = {}
        for kb_id, _ in links:
            if kb_id:
                counts[kb_id] = counts.get(kb_id, 0) + 1
        if not counts:
            return links
        result = list(links)
        for i, (plan, (kb_id, _)) in enumerate(zip(plans, links)):
            if plan[0] == "composite" or (kb_id and counts[kb_id] > 1):
                continue
            # A linked span changes only for a candidate that would be linked on its own score too.
            floor = self.threshold if kb_id else self.doc_floor
            for candidate in sorted((c for query in plan[1:] for c in tops[query]), key=lambda c: -c.score):
                if candidate.score < floor:
                    break
                if candidate.entity_ != kb_id and counts.get(candidate.entity_, 0):
                    result[i] = (candidate.entity_, candidate.score)
                    break
        return result

    def _tops(self, plans: List[List[Tuple[Any, ...]]]) -> Dict[Tuple[str, str], List[Candidate]]:
        """The candidates of every query of the plans, best first, from the cache or one search
        per label. Mentions repeat across a collection ("cisplatin", "hypertension"): the cache
        keeps the KB search for new texts only."""
        if self._cache_version != self.kb.version:  # names added since: forget
            self._cache.clear()
            self._cache_version = self.kb.version
        queries = {query for doc_plans in plans for plan in doc_plans for query in plan[1:]}
        missing = [query for query in queries if query not in self._cache]
        if missing:
            if len(self._cache) + len(missing) > CACHE_SIZE:
                self._cache.clear()
            for query, found in self._search([[("plain", query) for query in missing]]).items():
                self._cache[query] = found
        return {query: self._cache[query] for query in queries}

    def link_with_candidates(
        self, docs: Sequence[Doc], spans: Sequence[Sequence[Span]]
    ) -> Tuple[List[List[Link]], List[List[List[Candidate]]]]:
        """`link_spans`' links, and the candidates weighed for each span: those of its text and
        of its long form or composite parts, exact matches with their nearest names too (for
        recall@k), best first.

        docs (Sequence[Doc]): The docs.
        spans (Sequence[Sequence[Span]]): Per doc, labelled spans.
        RETURNS (Tuple[List[List[Link]], List[List[List[Candidate]]]]): Per doc and span, the
            link and the candidates.
        """
        plans = self._plans(docs, spans)
        tops = self._tops(plans)
        links = [self._link_doc(doc_plans, tops) for doc_plans in plans]
        found = self._search(plans, fuzzy_after_exact=True)
        candidates = [
            [sorted((c for query in plan[1:] for c in found[query]), key=lambda c: -c.score) for plan in doc_plans]
            for doc_plans in plans
        ]
        return links, candidates

    def _plans(self, docs: Sequence[Doc], spans: Sequence[Sequence[Span]]) -> List[List[Tuple[Any, ...]]]:
        return [
            [self._plan(doc, span, longs) for span in doc_spans] for doc, doc_spans, longs in self._docs(docs, spans)
        ]

    def _docs(
        self, docs: Sequence[Doc], spans: Sequence[Sequence[Span]]
    ) -> Iterator[Tuple[Doc, Sequence[Span], Dict[Tuple[int, int], Span]]]:
        for doc, doc_spans in zip(docs, spans):
            longs: Dict[Tuple[int, int], Span] = {}
            if self.cfg["resolve_abbreviations"] and any(is_short_form(span.text) for span in doc_spans):
                longs = {(short.start, short.end): long for short, long in self._abbreviations(doc)}
            yield doc, doc_spans, longs

    def _abbreviations(self, doc: Doc) -> List[Tuple[Span, Span]]:
        """(short-form mention, long form) pairs: those `fastbioner_abbreviations` stored in
        `doc.spans`, if it ran before; else found here, by the same detector."""
        stored = doc.spans.get(self.cfg["abbreviations_key"]) if doc.spans else None
        if stored is not None and Span.has_extension("long_form"):
            return [(short, short._.long_form) for short in stored if short._.long_form is not None]
        return find_abbreviations(doc)

    def _plan(self, doc: Doc, span: Span, longs: Dict[Tuple[int, int], Span]) -> Tuple[Any, ...]:
        """(kind, queries...): "abbr" (long form, own text), "composite" (whole, parts...), or "plain" (text)."""
        label, text = span.label_, span.text
        long = longs.get((span.start, span.end))
        if long is not None:
            return ("abbr", (label, long.text), (label, text))
        parts = split_composite(text) if self.cfg["split_composites"] else []
        if parts:
            return ("composite", (label, text), *((label, part) for part in parts))
        return ("plain", (label, text))

    def _search(
        self, plans: List[List[Tuple[Any, ...]]], *, fuzzy_after_exact: bool = False
    ) -> Dict[Tuple[str, str], List[Candidate]]:
        """The candidates of every (label, text) query of the plans: one KB search per label."""
        by_label: Dict[str, Dict[str, None]] = {}
        for plan in (p for doc_plans in plans for p in doc_plans):
            for label, text in plan[1:]:
                by_label.setdefault(label, {})[text] = None
        found: Dict[Tuple[str, str], List[Candidate]] = {}
        for label, texts in by_label.items():
            results = self.kb.get_candidates_batch(
                list(texts), label, k=int(self.cfg["n_candidates"]), fuzzy_after_exact=fuzzy_after_exact
            )
            found.update(((label, text), candidates) for text, candidates in zip(texts, results))
        return found

    def _link(self, found: List[Candidate]) -> Link:
        """The best candidate's link, or NIL (with its score) below the threshold."""
        if not found:
            return NIL, 0.0
        top = found[0]
        return (top.entity_ if top.score >= self.threshold else NIL), top.score

    @property
    def threshold(self) -> float:
        """The least score of a link: the `threshold` setting, or by default RANKED_THRESHOLD for
        a KB with a fitted ranker (its scores are probabilities) and COSINE_THRESHOLD without."""
        if self.cfg["threshold"] is not None:
            return float(self.cfg["threshold"])
        return RANKED_THRESHOLD if self.kb.ranker else COSINE_THRESHOLD

    @property
    def doc_floor(self) -> float:
        """The least score of a candidate that document consistency gives a NIL entity:
        DOC_FLOOR for a KB with a ranker, DOC_COSINE_FLOOR without."""
        return DOC_FLOOR if self.kb.ranker else DOC_COSINE_FLOOR

    def _decide(self, plan: Tuple[Any, ...], tops: Dict[Tuple[str, str], List[Candidate]]) -> Link:
        kind, found = plan[0], tops[plan[1]]
        whole = found[0] if found else None
        first = self._link(found)
        if kind == "abbr":
            return first if first[0] else self._link(tops[plan[2]])
        # A composite that the KB holds whole (the corpus's own "A|B" for this text) stays whole.
        if kind == "composite" and (whole is None or whole.similarity < 1.0):
            parts = [self._link(tops[query]) for query in plan[2:]]
            score = min(part[1] for part in parts)
            if all(part[0] for part in parts) and score >= first[1]:
                return "|".join(dict.fromkeys(part[0] for part in parts)), score
        return first

    def set_annotations(self, docs: Sequence[Doc], links: Sequence[Sequence[Link]]) -> None:
        """Set `ent.kb_id_` and `ent._.kb_score` from `predict`'s output.

        docs (Sequence[Doc]): The docs.
        links (Sequence[Sequence[Link]]): Per doc, a link per entity.
        """
        for doc, doc_links in zip(docs, links):
            for ent, (kb_id, score) in zip(doc.ents, doc_links):
                # Per token: cheaper than rebuilding the spans and assigning doc.ents again.
                for token in ent:
                    token.ent_kb_id_ = kb_id
                ent._.set(SCORE_EXTENSION, round(score, 4))

    def score(self, examples: Iterable[Example], **kwargs: Any) -> Dict[str, Any]:
        """Score the links of entities whose spans match the reference's (`nel_micro_f` etc.)."""
        return self.scorer(examples, **kwargs) if self.scorer is not None else {}

    # Serialisation: the settings and the KB, no pickle
    def to_bytes(self, *, exclude: Iterable[str] = tuple()) -> bytes:
        """Serialise the component's settings and KB.

        exclude (Iterable[str]): String names of serialization fields to exclude.
        RETURNS (bytes): The msgpack bytes.
        """
        # The stdlib's JSON: srsly's (ujson) writes 0.6 as 0.6000000000000001.
        serialize = {"cfg": lambda: json.dumps(self.cfg).encode("utf8"), "kb": self.kb.to_bytes}
        return util.to_bytes(serialize, exclude)

    def from_bytes(self, bytes_data: bytes, *, exclude: Iterable[str] = tuple()) -> "FastBioLinker":
        """Load the component from `to_bytes` output.

        bytes_data (bytes): The data.
        exclude (Iterable[str]): String names of serialization fields to exclude.
        RETURNS (FastBioLinker): The component.
        """
        self._cache.clear()
        deserialize = {"cfg": lambda b: self.cfg.update(json.loads(b)), "kb": self.kb.from_bytes}
        util.from_bytes(bytes_data, deserialize, exclude)
        return self

    def to_disk(self, path: Union[str, Path], *, exclude: Iterable[str] = tuple()) -> None:
        """Save the component to a folder: cfg (JSON) and kb/ (`ConceptKB.to_disk`).

        path (Union[str, Path]): The folder.
        exclude (Iterable[str]): String names of serialization fields to exclude.
        """

        def write_cfg(p: Path) -> None:
            p.write_text(json.dumps(self.cfg, indent=2) + "\n", encoding="utf8")

        util.to_disk(path, {"cfg": write_cfg, "kb": self.kb.to_disk}, exclude)

    def from_disk(self, path: Union[str, Path], *, exclude: Iterable[str] = tuple()) -> "FastBioLinker":
        """Load the component from a folder written by `to_disk`.

        path (Union[str, Path]): The folder.
        exclude (Iterable[str]): String names of serialization fields to exclude.
        RETURNS (FastBioLinker): The component.
        """

        def read_cfg(p: Path) -> None:
            self.cfg.update(json.loads(p.read_text(encoding="utf8")))

        def read_kb(p: Path) -> None:
            self.kb.from_disk(p)
            self._cache.clear()

        util.from_disk(path, {"cfg": read_cfg, "kb": read_kb}, exclude)
        return self
