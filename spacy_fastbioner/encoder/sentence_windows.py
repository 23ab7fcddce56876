"""Upgrade a trained pipeline to feed its transformer one sentence at a time:
a `fastbioner_sentences` component first, and the transformer's span getter
set to `spacy_fastbioner.sentence_spans.v1`. The weights are unchanged."""

from typing import cast

from spacy.language import Language
from spacy_transformers import Transformer

from ..ml.span_getters import SENTENCE_SPANS, configure_sentence_spans
from ..pipeline.sentences import make_fastbioner_sentences  # noqa: F401  (registers the factory)
from .transformer import transformer_names

SENTENCES_FACTORY = "fastbioner_sentences"


def with_sentence_windows(nlp: Language, *, window: int = 128, stride: int = 96, name: str = "sentences") -> Language:
    """Add a `fastbioner_sentences` component at the start of the pipeline
    unless it has one, and give every `transformer` component the span getter
    `spacy_fastbioner.sentence_spans.v1` (in its model and in `nlp.config`, so
    that the saved pipeline loads with it).

    nlp (Language): A pipeline with a spacy-transformers `transformer` component.
    window (int): The most tokens in a transformer span.
    stride (int): The tokens between two span starts in a sentence longer than `window`.
    name (str): The name of the added sentence component.
    RETURNS (Language): `nlp`, changed in place.
    """
    get_spans = configure_sentence_spans(window=window, stride=stride)
    transformers = transformer_names(nlp)
    if not transformers:
        raise ValueError(f"the pipeline {nlp.component_names} has no spacy-transformers 'transformer' component")
    factories = [nlp.get_pipe_meta(pipe_name).factory for pipe_name in nlp.component_names]
    if SENTENCES_FACTORY not in factories:
        if name in nlp.component_names:
            raise ValueError(
                f"cannot add the sentence component as {name!r}: the pipeline "
                f"{nlp.component_names} has a component of that name already"
            )
        nlp.add_pipe(SENTENCES_FACTORY, name=name, first=True)
    for trf_name in transformers:
        cast(Transformer, nlp.get_pipe(trf_name)).model.attrs["get_spans"] = get_spans
        # The live config block of the component, which `nlp.config` holds.
        nlp.get_pipe_config(trf_name)["model"]["get_spans"] = {
            "@span_getters": SENTENCE_SPANS,
            "window": window,
            "stride": stride,
        }
    return nlp
