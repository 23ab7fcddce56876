"""The `fastbioner_sentences` component: light rule-based sentence boundaries,
so that a transformer can be fed one sentence at a time
(`spacy_fastbioner.sentence_spans.v1`).

spaCy's `sentencizer` starts a sentence after every "." token, which with our
tokenizer (it cuts "e.g." into "e . g .") splits inside abbreviations. This
component splits the doc's text with `text.split_sentences`, the rule used
to cut raw abstracts into the teacher's training sentences: at whitespace after
".", "!" or "?" that precedes an uppercase letter or a digit.
"""

from typing import Iterable, Iterator, List, cast

import numpy
from spacy.attrs import IDX, SENT_START
from spacy.language import Language
from spacy.tokens import Doc
from thinc.types import Ints2d

from ..corpora.doc_text import read_text
from ..corpora.text import split_sentences


@Language.factory("fastbioner_sentences", assigns=["token.is_sent_start"])
def make_fastbioner_sentences(nlp: Language, name: str) -> "SentenceSplitter":
    """Create a component that sets sentence starts by `text.split_sentences`,
    on docs that have none yet.
    """
    return SentenceSplitter(name)


class SentenceSplitter:
    """Set `token.is_sent_start` on every token of a doc without sentence
    boundaries: a sentence of `split_sentences(doc.text)` starts at the first
    token at or after its first character. Docs that have sentence boundaries
    already (e.g. from a gold-preprocessed corpus or a parser) are left as they
    are. Linear in the length of the text; never raises on a doc.
    """

    def __init__(self, name: str = "fastbioner_sentences") -> None:
        """Initialize the component.

        name (str): The component instance name.
        """
        self.name = name

    def __call__(self, doc: Doc) -> Doc:
        """Set the sentence starts of a doc, if it has none.

        doc (Doc): The doc.
        RETURNS (Doc): The same doc.
        """
        if len(doc) < 2 or doc.has_annotation("SENT_START"):
            return doc
        starts = sentence_start_tokens(doc)
        # SENT_START -1 (not a start) as the uint64 that Doc.from_array takes.
        values = numpy.full((len(doc), 1), numpy.uint64(2**64 - 1), dtype="uint64")
        values[starts, 0] = 1
        values[0, 0] = 1
        doc.from_array([SENT_START], cast(Ints2d, values))
        return doc

    def pipe(self, stream: Iterable[Doc], batch_size: int = 128) -> Iterator[Doc]:
        """Set the sentence starts of a stream of docs.

        stream (Iterable[Doc]): The docs.
        batch_size (int): Unused; for compatibility with `nlp.pipe`.
        YIELDS (Doc): The docs, in order.
        """
        for doc in stream:
            yield self(doc)


def sentence_start_tokens(doc: Doc) -> List[int]:
    """The tokens that start the second and later sentences of
    `split_sentences(doc.text)`: for each, the first token at or after its
    first character (a sentence start inside a token moves to the next token;
    one that no token follows is dropped).

    doc (Doc): The doc.
    RETURNS (List[int]): Increasing token indices, all > 0.
    """
    offsets = [start for start, _ in split_sentences(read_text(doc))[1:]]
    if not offsets:
        return []
    token_starts = doc.to_array(IDX).astype("int64")
    tokens = numpy.searchsorted(token_starts, numpy.asarray(offsets, dtype="int64"), side="left")
    return sorted({int(i) for i in tokens if 0 < i < len(doc)})
