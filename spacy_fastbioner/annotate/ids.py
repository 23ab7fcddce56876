"""Document ids that the output formats can hold.

An id is written into PubTator lines ('id|t|...', 'id<TAB>start...'), BioC
XML and displaCy pages. An id with a control character (a line break, a tab)
would forge lines of PubTator and is not allowed in XML 1.0; one with '|'
would forge PubTator's title and abstract lines. Such documents are refused
into errors.jsonl rather than written with an altered id, so that every id in
the output is the input's own.
"""

import re
from typing import Optional, Sequence

# C0 and C1 control characters (tab and line breaks included), and DEL.
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
MAX_ID_CHARS = 1000


def unsafe_id_reason(doc_id: str, formats: Sequence[str]) -> Optional[str]:
    """Why a document id cannot be written in the output formats, or None.

    doc_id (str): The document's id.
    formats (Sequence[str]): The run's output formats.
    RETURNS (Optional[str]): The reason, for errors.jsonl.
    """
    if _CONTROL.search(doc_id):
        return f"the id {doc_id[:80]!r} holds a control character (a line break or tab); expected a one-line id"
    if "pubtator" in formats and "|" in doc_id:
        return f"the id {doc_id[:80]!r} holds '|', which PubTator output cannot hold; expected an id without '|'"
    if len(doc_id) > MAX_ID_CHARS:
        return f"an id of {len(doc_id):,} characters; expected at most {MAX_ID_CHARS:,}"
    return None
