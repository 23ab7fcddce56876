"""The token classification head of `fastbioner_ner`."""

from typing import List, Optional

from spacy.tokens import Doc
from spacy.util import registry
from thinc.api import Dropout, Linear, Model, chain, with_array
from thinc.types import Floats2d

# Set by `build_transformer_tagger` on the models it builds: the model is its
# tok2vec, then dropout and the "output_layer" ref over the token vectors, the
# head that `fastbioner_ner` computes directly at inference. An attribute that
# this package sets, not thinc's generated layer names, which change silently.
FAST_PATH_ATTR = "fastbioner_fast_path"


@registry.architectures("spacy_fastbioner.TransformerTagger.v1")
def build_transformer_tagger(
    tok2vec: Model[List[Doc], List[Floats2d]],
    nO: Optional[int] = None,
    dropout: float = 0.1,
) -> Model[List[Doc], List[Floats2d]]:
    """Build a tagger that scores every tag for every token, returning logits
    (unnormalised scores), one row per token. Softmax, temperature and the
    constrained decoding are left to the component, which needs the logits
    for knowledge distillation.

    tok2vec (Model[List[Doc], List[Floats2d]]): The token-to-vector layer,
        usually a `spacy-transformers.TransformerListener.v1`.
    nO (Optional[int]): The number of tags. Inferred at initialization.
    dropout (float): Dropout on the token vectors before the output layer, as
        in BERT's token classification head.
    """
    output_layer = Linear(nO=nO)
    head: Model[List[Floats2d], List[Floats2d]] = with_array(chain(Dropout(dropout), output_layer))
    model = chain(tok2vec, head)
    model.set_ref("tok2vec", tok2vec)
    model.set_ref("output_layer", output_layer)
    model.attrs[FAST_PATH_ATTR] = True
    return model
