"""Pooling of wordpiece vectors into one vector per spaCy token."""

from typing import Callable, Tuple, cast

from spacy.util import registry
from thinc.api import Model
from thinc.types import Floats2d, Ints1d, Ragged


@registry.layers("spacy_fastbioner.first_wordpiece.v1")
def first_wordpiece() -> Model[Ragged, Floats2d]:
    """Pool each token's wordpieces to the vector of its first one, as
    BioBERT's token classification does.

    Unlike thinc's `reduce_first`, a token with no wordpieces (whitespace, or
    characters that the wordpiece tokenizer drops) gets a zero vector instead
    of an error, so inference never fails on unusual text.
    """
    return Model("first_wordpiece", _forward)


def _forward(
    model: Model[Ragged, Floats2d], Xr: Ragged, is_train: bool
) -> Tuple[Floats2d, Callable[[Floats2d], Ragged]]:
    xp = model.ops.xp
    X = cast(Floats2d, model.ops.as_contig(Xr.dataXd))
    lengths: Ints1d = Xr.lengths
    starts = xp.cumsum(lengths) - lengths
    present = lengths > 0
    rows = starts[present]
    Y = model.ops.alloc2f(lengths.shape[0], X.shape[1], dtype=X.dtype)
    Y[present] = X[rows]

    def backprop(dY: Floats2d) -> Ragged:
        dX = model.ops.alloc2f(*X.shape, dtype=dY.dtype)
        dX[rows] = dY[present]
        return Ragged(dX, lengths)

    return Y, backprop
