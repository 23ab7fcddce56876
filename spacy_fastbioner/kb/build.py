"""`build_kb`: a `ConceptKB` from PubTator gold annotations, MeSH XML and CTD TSV files."""

import logging
from pathlib import Path
from typing import Dict, Iterable, List, Optional, Set, Union

from ..corpora.readers import CorpusError, PubTatorDocument, read_pubtator
from .lookup import ConceptKB
from .ranking import Ranker, fit_ranker
from .sources import KBSourceError, pubtator_names, read_ctd, read_mesh

logger = logging.getLogger(__name__)
PathLike = Union[str, Path]


def build_kb(
    output: Optional[PathLike] = None,
    *,
    pubtator: Iterable[PathLike] = (),
    mesh: Iterable[PathLike] = (),
    ctd: Iterable[PathLike] = (),
    type_map: Optional[Dict[str, str]] = None,
    ranker: bool = True,
) -> ConceptKB:
    """Build a knowledge base of concept names and save it if `output` is given.

    Names from the corpora count as often as they are annotated, vocabulary names once: an
    exact match prefers the concept the annotators chose most often.

    output (Optional[PathLike]): A folder to save the KB to (`ConceptKB.to_disk`).
    pubtator (Iterable[PathLike]): PubTator files with concept identifiers (training sets only,
        for honest dev and test figures).
    mesh (Iterable[PathLike]): NLM MeSH `desc20XX.xml` and `supp20XX.xml` files.
    ctd (Iterable[PathLike]): CTD `CTD_diseases.tsv` and `CTD_chemicals.tsv` files.
    type_map (Optional[Dict[str, str]]): PubTator label renames (see `read_pubtator`).
    ranker (bool): Fit the link score (`kb.ranking`) on the PubTator files, if any.
    RETURNS (ConceptKB): The KB, built.
    RAISES KBSourceError: A file is missing or malformed (the message names `path:line`).
    """
    pubtator, mesh, ctd = list(pubtator), list(mesh), list(ctd)
    documents = _read_documents(pubtator, type_map)
    if not documents and not mesh and not ctd:
        raise ValueError("build_kb: no source given; expected PubTator, MeSH or CTD files")
    kb = ConceptKB()
    if documents:
        n = kb.add_names(pubtator_names(documents))
        files = [Path(path).name for path in pubtator]
        kb.sources.append({"kind": "pubtator", "file": ", ".join(files), "names": n, "documents": len(documents)})
        logger.info("PubTator: %d names", n)
    for kind, paths, reader in (("mesh", mesh, read_mesh), ("ctd", ctd, read_ctd)):
        for path in paths:
            n = kb.add_names(reader(path))
            kb.sources.append({"kind": kind, "file": Path(path).name, "names": n})
            logger.info("%s: %d names", path, n)
    kb.build()
    if ranker and documents:
        kb.ranker = fit_document_ranker(documents)
    if output is not None:
        kb.to_disk(output)
    return kb


def fit_document_ranker(documents: List[PubTatorDocument], *, n_folds: int = 5) -> Optional[Ranker]:
    """Fit the link score on PubTator documents by cross-validation (a KB from the other folds'
    names for each fold's mentions); see `ranking.fit_ranker`.

    documents (List[PubTatorDocument]): Training documents with concept identifiers.
    n_folds (int): The number of folds (fewer if there are fewer documents).
    RETURNS (Optional[Ranker]): The weights, or None with too little data.
    """
    mentions = [
        (text, label, concept, i)
        for i, doc in enumerate(documents)
        for (_, _, text, label), concept in zip(doc.mentions, doc.concept_ids)
    ]

    def make_kb(indices: Set[int]) -> ConceptKB:
        kb = ConceptKB()
        kb.add_names(pubtator_names(documents[i] for i in sorted(indices)))
        return kb

    n_folds = min(n_folds, len(documents))
    return fit_ranker(mentions, make_kb, n_folds=n_folds) if n_folds >= 2 else None


def _read_documents(paths: Iterable[PathLike], type_map: Optional[Dict[str, str]]) -> List[PubTatorDocument]:
    documents: List[PubTatorDocument] = []
    for path in paths:
        try:
            documents.extend(read_pubtator(path, type_map))
        except CorpusError as err:
            raise KBSourceError(err.path, err.line, str(err).split(": ", 1)[-1]) from None
    return documents
