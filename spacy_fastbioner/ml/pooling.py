"""Pooling of wordpiece vectors into one vector per spaCy token."""

import sys
from typing import TYPE_CHECKING, Any, Callable, List, Optional, Sequence, Tuple, cast

import numpy
from spacy.util import registry
from thinc.api import Model, get_array_module
from thinc.types import Floats2d, Ints1d, Ragged

if TYPE_CHECKING:  # imported where used: importing it imports `transformers`
    from spacy_transformers.data_classes import TransformerData

# Set on the layer by `first_wordpiece` itself: inference recognises the
# pooling by it, not by a layer name that thinc or a user may change.
FIRST_WORDPIECE_ATTR = "fastbioner_first_wordpiece"


@registry.layers("spacy_fastbioner.first_wordpiece.v1")
def first_wordpiece() -> Model[Ragged, Floats2d]:
    """Pool each token's wordpieces to the vector of its first one, as
    BioBERT's token classification does.

    Unlike thinc's `reduce_first`, a token with no wordpieces (whitespace, or
    characters that the wordpiece tokenizer drops) gets a zero vector instead
    of an error, so inference never fails on unusual text.
    """
    model: Model[Ragged, Floats2d] = Model("first_wordpiece", _forward)
    model.attrs[FIRST_WORDPIECE_ATTR] = True
    return model


def _forward(
    model: Model[Ragged, Floats2d], Xr: Ragged, is_train: bool
) -> Tuple[Floats2d, Callable[[Floats2d], Ragged]]:
    xp = model.ops.xp
    X = cast(Floats2d, model.ops.as_contig(Xr.dataXd))
    lengths: Ints1d = Xr.lengths
    present, rows = _first_rows(xp, lengths)
    Y = model.ops.alloc2f(lengths.shape[0], X.shape[1], dtype=X.dtype)
    Y[present] = X[rows]

    def backprop(dY: Floats2d) -> Ragged:
        dX = model.ops.alloc2f(*X.shape, dtype=dY.dtype)
        dX[rows] = dY[present]
        return Ragged(dX, lengths)

    return Y, backprop


def _first_rows(xp: Any, lengths: Ints1d) -> Tuple[Any, Any]:
    """Which tokens have wordpieces, and the row of each one's first in the
    flattened alignment."""
    present = lengths > 0
    return present, (xp.cumsum(lengths) - lengths)[present]


def first_wordpiece_vectors(trf_datas: Sequence[Optional["TransformerData"]]) -> Optional[List[Floats2d]]:
    """Each doc's token vectors by first-wordpiece pooling, read straight
    from its transformer output: what spacy-transformers' `trfs2arrays` with
    `first_wordpiece` computes at inference, without first gathering every
    wordpiece of every token and concatenating the docs (at int8 speeds those
    copies were a tenth of the spaCy side's time).

    trf_datas (Sequence[Optional[TransformerData]]): Each doc's `doc._.trf_data`.
    RETURNS (Optional[List[Floats2d]]): (n_tokens, width) per doc, and, as
        `trfs2arrays` gives them, (0, 0) for a doc whose output is empty; None
        if a doc has no `trf_data` at all (the general path handles that).
    """
    outputs: List[Floats2d] = []
    for trf_data in trf_datas:
        if trf_data is None:
            return None
        hidden: Any = trf_data.model_output.get("last_hidden_state")
        if hidden is None or not hidden.size:
            outputs.append(cast(Floats2d, numpy.zeros((0, 0), dtype="float32")))
            continue
        xp = get_array_module(hidden)
        src = hidden.reshape((-1, hidden.shape[-1]))
        align = trf_data.align
        lengths = align.lengths
        indices = align.data.ravel()
        if lengths.all():
            # Every token has wordpieces (the usual case): two gathers.
            outputs.append(src.take(indices.take(xp.cumsum(lengths) - lengths), axis=0))
            continue
        present, rows = _first_rows(xp, lengths)
        vectors = xp.zeros((lengths.shape[0], src.shape[1]), dtype=src.dtype)
        vectors[present] = src[indices[rows]]
        outputs.append(vectors)
    return outputs


def reads_first_wordpiece(tok2vec: Model) -> bool:
    """Whether a tok2vec layer is spacy-transformers' `TransformerListener.v1`
    with `first_wordpiece` pooling, whose inference `first_wordpiece_vectors`
    computes directly. Recognised by the listener's class, `trfs2arrays`'s
    forward function and the pooling's attribute (`FIRST_WORDPIECE_ATTR`),
    never by layer names; the check runs at each prediction, so that a
    listener replaced later (`nlp.replace_listeners`) takes the general path.

    tok2vec (Model): The tagger's tok2vec layer.
    RETURNS (bool): Whether `first_wordpiece_vectors` gives its output.
    """
    # Looked up, not imported: importing spacy-transformers imports
    # `transformers`, and a listener exists only once it has been imported.
    listener = sys.modules.get("spacy_transformers.layers.listener")
    trfs2arrays = sys.modules.get("spacy_transformers.layers.trfs2arrays")
    if listener is None or trfs2arrays is None or len(tok2vec.layers) != 2:
        return False
    first, pooler = tok2vec.layers
    return (
        isinstance(first, listener.TransformerListener)
        and pooler._func is trfs2arrays.forward
        and len(pooler.layers) == 1
        and bool(pooler.layers[0].attrs.get(FIRST_WORDPIECE_ATTR))
    )
