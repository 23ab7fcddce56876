"""Choose, for each token of a long doc, the transformer window that gives it
the most context.

`spacy-transformers.strided_spans.v1` cuts a long doc into overlapping windows
(e.g. 128 tokens every 96), and the doc's alignment lists, for a token in an
overlap, its wordpieces in both windows, the earlier window first. Pooling the
first wordpiece would therefore always take the earlier window, where a token
near the window's end has no right context at all. As in BERT's "max context"
rule for strided SQuAD documents, each token is here aligned to the one window
in which the smaller of its left and right contexts is largest; across the
overlap, this switches windows half-way, so every token keeps at least half the
overlap as context on both sides.

The rule is applied wherever the component reads the transformer: at
inference (`best_windows`, or `best_window_alignment` straight), and in
training and distillation (`best_context_windows`, which also covers the
outputs that the transformer hands to its listeners in `update`), so that a
student learns on the features it predicts with, and cached teacher targets
(computed by `predict`) match the student's features.
"""

from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, Iterable, Iterator, List, Optional, Sequence, Tuple, TypeVar, cast

import numpy
from spacy.tokens import Doc
from thinc.api import Model
from thinc.types import Ints1d, Ragged

if TYPE_CHECKING:  # imported where used: importing it imports `transformers`
    from spacy_transformers.data_classes import TransformerData

_T = TypeVar("_T")


def best_window_alignment(trf_data: _T) -> _T:
    """Keep, for each token, only the wordpieces of its best-context window.

    trf_data (TransformerData): One doc's transformer output; anything else
        (None, a doc's `doc._.trf_data` before a transformer ran) is returned
        as it is.
    RETURNS (TransformerData): The same output with a reduced alignment, or
        `trf_data` itself when no token is in more than one window.
    """
    wordpieces = getattr(trf_data, "wordpieces", None)
    if wordpieces is None or len(wordpieces) < 2:
        return trf_data
    output: Any = trf_data
    align = output.align
    if not align.lengths.size or not align.dataXd.size:
        return trf_data
    data = numpy.asarray(align.dataXd).astype("int64").ravel()
    lengths = numpy.asarray(align.lengths).astype("int64")
    seq_len = int(wordpieces.input_ids.shape[1])
    window = data // seq_len
    position = data % seq_len
    window_len = numpy.minimum(numpy.asarray(wordpieces.lengths, dtype="int64"), seq_len)[window]
    context = numpy.minimum(position, window_len - 1 - position)
    token = numpy.repeat(numpy.arange(lengths.shape[0]), lengths)
    # Rank each row by its context, then by the earlier window on ties; keep
    # all rows of the window of the token's best row.
    n_windows = int(window.max()) + 1
    key = context * n_windows + (n_windows - 1 - window)
    best = numpy.full(lengths.shape[0], -1, dtype="int64")
    numpy.maximum.at(best, token, key)
    keep = window == (n_windows - 1 - best % n_windows)[token]
    if keep.all():
        return trf_data
    new_lengths = numpy.bincount(token[keep], minlength=lengths.shape[0])
    new_align = Ragged(align.dataXd[keep], cast(Ints1d, numpy.asarray(new_lengths, dtype=align.lengths.dtype)))
    from spacy_transformers.data_classes import TransformerData

    return cast(_T, TransformerData(wordpieces=wordpieces, model_output=output.model_output, align=new_align))


@contextmanager
def best_windows(docs: Iterable[Doc]) -> Iterator[None]:
    """Within the block, give each doc's `doc._.trf_data` the best-window
    alignment (see `best_window_alignment`); restore the original on exit, so
    that the docs are unchanged afterwards.

    docs (Iterable[Doc]): Docs annotated by a transformer component, or not.
    """
    saved: List[Tuple[Doc, Optional["TransformerData"]]] = []
    if not Doc.has_extension("trf_data"):  # spacy-transformers is not loaded
        yield
        return
    from spacy_transformers.data_classes import TransformerData

    try:
        for doc in docs:
            trf_data = doc._.trf_data
            if isinstance(trf_data, TransformerData):
                reduced = best_window_alignment(trf_data)
                if reduced is not trf_data:
                    saved.append((doc, trf_data))
                    doc._.trf_data = reduced
        yield
    finally:
        for doc, trf_data in saved:
            doc._.trf_data = trf_data


@contextmanager
def best_context_windows(model: Model, docs: Sequence[Doc]) -> Iterator[None]:
    """Within the block, `model` reads each token of `docs` from its
    best-context window (`best_window_alignment`), wherever it reads the
    transformer's output from: the docs' `doc._.trf_data` (prediction, or
    training with a frozen transformer), or the outputs that the upstream
    transformer's `update` handed to the model's listeners (training and
    distillation). Both are restored on exit; the gradient still reaches
    every wordpiece's row of the transformer output (zero where unread).

    model (Model): A model whose listeners (spacy-transformers'
        `TransformerListener`) read a transformer component's output.
    docs (Sequence[Doc]): The docs the model is about to be run on.
    """
    saved: List[Tuple[Any, List[Any]]] = []
    if Doc.has_extension("trf_data"):  # otherwise spacy-transformers is not loaded: no listeners
        from spacy_transformers.layers.listener import TransformerListener

        for node in model.walk():
            outputs = getattr(node, "_outputs", None)
            if isinstance(node, TransformerListener) and outputs is not None:
                saved.append((node, outputs))
                # A new list: the transformer hands the same list to every listener.
                node._outputs = [best_window_alignment(output) for output in outputs]
    try:
        with best_windows(docs):
            yield
    finally:
        for node, outputs in saved:
            # Unless the backward pass consumed and cleared them already.
            if node._outputs is not None:
                node._outputs = outputs
