"""A doc's text, read once for the two components that need it in turn.

`Doc.text` builds a `Token` for every token on every call. The
`fastbioner_sentences` component reads the text to find sentence boundaries,
and the runtime transformer's forward pass reads it again to cut the span
texts; at OpenVINO int8 speeds the two reads took about a sixth of the spaCy
side's time on NCBI-disease sentences (py-spy of `nlp.pipe`). The splitter
keeps what it read (`read_text`), and the transformer takes it (`take_text`),
which also lets it go: a doc holds no second copy of its text afterwards.
A kept text is used only while the doc's characters still add up to it. In a
pipeline whose transformer does not take it (PyTorch's keeps
spacy-transformers' forward pass), the text stays until the doc is freed.
"""

import weakref

from spacy.tokens import Doc

_kept: "weakref.WeakKeyDictionary[Doc, str]" = weakref.WeakKeyDictionary()


def read_text(doc: Doc) -> str:
    """`doc.text`, kept for a later `take_text` of the same doc.

    doc (Doc): The doc.
    RETURNS (str): Its text.
    """
    text = doc.text
    _kept[doc] = text
    return text


def take_text(doc: Doc) -> str:
    """`doc.text`: the text that `read_text` kept for this doc if it still
    matches the doc's length in characters (else read anew), no longer kept.

    doc (Doc): The doc.
    RETURNS (str): Its text.
    """
    text = _kept.pop(doc, None)
    if text is None or len(text) != text_length(doc):
        return doc.text
    return text


def text_length(doc: Doc) -> int:
    """The number of characters of the doc's text, from its last token."""
    if not len(doc):
        return 0
    last = doc[-1]
    return last.idx + len(last.text_with_ws)
