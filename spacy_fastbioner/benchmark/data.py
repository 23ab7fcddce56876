"""The benchmark's documents: gold docs from a .spacy DocBin or an IOB file."""

from pathlib import Path
from typing import List

import spacy
from spacy.tokens import Doc, DocBin
from spacy.vocab import Vocab

from ..corpora.readers import IobCorpus


def load_gold_docs(path: Path, vocab: Vocab) -> List[Doc]:
    """The gold-annotated docs of a corpus, in the given vocab (each pipeline
    scores against references in its own vocab).

    path (Path): A .spacy DocBin (e.g. made by the project's `corpus` command)
        or a `token<TAB>tag` IOB2 file (.tsv, .iob, .txt), one doc per sentence.
    vocab (Vocab): The vocab of the docs.
    RETURNS (List[Doc]): The docs, with their gold tokens and entities.
    """
    path = Path(path)
    if not path.exists():
        raise ValueError(f"benchmark data not found: {path}")
    if path.suffix == ".spacy":
        return list(DocBin().from_disk(path).get_docs(vocab))
    nlp = spacy.blank("en", vocab=vocab)
    return [eg.reference for eg in IobCorpus(path)(nlp)]
