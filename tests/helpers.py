"""Tiny offline BERT models and synthetic NER data, for tests and smoke runs.

Nothing here is downloaded: the model is a random `BertConfig` with a
WordPiece vocab built from the words it will see.
"""

import random
from pathlib import Path
from typing import Any, Callable, Dict, Iterable, List, Sequence, Tuple, cast

import spacy
from spacy.language import Language
from spacy.tokens import Doc
from spacy.training import Example
from spacy.util import fix_random_seed

from spacy_fastbioner.benchmark.synthetic import ENTITY_WORDS, OUTSIDE_WORDS, synthetic_sentences  # noqa: F401

SPECIAL_TOKENS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]


def write_iob(path: Path, sentences: Iterable[Tuple[List[str], List[str]]]) -> Path:
    """Write sentences as a `token<TAB>tag` file."""
    lines: List[str] = []
    for words, tags in sentences:
        lines.extend(f"{w}\t{t}" for w, t in zip(words, tags))
        lines.append("")
    path.write_text("\n".join(lines) + "\n", encoding="utf8")
    return path


def make_tiny_bert(
    path: Path,
    *,
    words: Iterable[str] = (),
    n_layers: int = 2,
    hidden: int = 32,
    seed: int = 0,
    max_positions: int = 128,
) -> Path:
    """Save a randomly initialised BERT and its WordPiece tokenizer to `path`,
    as a Hugging Face folder that `TransformerModel.v3` loads by name. The
    tokenizer sets no `model_max_length`; the model has `max_positions`
    position embeddings.
    """
    import torch
    from transformers import BertConfig, BertModel, BertTokenizerFast

    vocab = list(SPECIAL_TOKENS)
    pieces = set(OUTSIDE_WORDS)
    for entities in ENTITY_WORDS.values():
        pieces.update(w for entity in entities for w in entity)
    pieces.update(w.lower() for w in words)
    pieces.update("abcdefghijklmnopqrstuvwxyz0123456789.,;:()[]-/+'\"")
    pieces.update(f"##{c}" for c in "abcdefghijklmnopqrstuvwxyz0123456789")
    vocab.extend(sorted(pieces))
    path.mkdir(parents=True, exist_ok=True)
    vocab_file = path / "vocab.txt"
    vocab_file.write_text("\n".join(vocab) + "\n", encoding="utf8")
    torch.manual_seed(seed)
    config = BertConfig(
        vocab_size=len(vocab),
        hidden_size=hidden,
        num_hidden_layers=n_layers,
        num_attention_heads=2,
        intermediate_size=hidden * 2,
        max_position_embeddings=max_positions,
    )
    BertModel(config).save_pretrained(path)
    BertTokenizerFast(vocab_file=str(vocab_file), do_lower_case=True).save_pretrained(path)
    return path


def tiny_transformer_config(model_dir: Path, *, window: int = 48, stride: int = 32) -> dict:
    """The `transformer` component config for a tiny local model."""
    return {
        "model": {
            "@architectures": "spacy-transformers.TransformerModel.v3",
            "name": str(model_dir),
            "tokenizer_config": {"use_fast": True},
            "get_spans": {
                "@span_getters": "spacy-transformers.strided_spans.v1",
                "window": window,
                "stride": stride,
            },
        }
    }


def make_examples(nlp: Language, sentences, *, gold: bool = True) -> List[Example]:
    """Examples of (words, tags) sentences; `gold=False` leaves the reference unannotated."""
    examples = []
    for words, tags in sentences:
        predicted = Doc(nlp.vocab, words=words)
        reference = Doc(nlp.vocab, words=words, ents=tags) if gold else Doc(nlp.vocab, words=words)
        examples.append(Example(predicted, reference))
    return examples


def make_pipeline(model_dir: Path) -> Language:
    """A blank English pipeline: a tiny transformer and fastbioner_ner."""
    nlp = spacy.blank("en")
    nlp.add_pipe("transformer", config=tiny_transformer_config(model_dir))
    nlp.add_pipe("fastbioner_ner")
    return nlp


def train_pipeline(
    nlp: Language, examples: List[Example], *, epochs: int, seed: int = 0, batch_size: int = 16
) -> Language:
    """Initialize and train a pipeline with plain `nlp.update` calls."""
    fix_random_seed(seed)
    optimizer = nlp.initialize(lambda: examples)
    optimizer.learn_rate = 1e-3
    examples = list(examples)
    for _ in range(epochs):
        random.shuffle(examples)
        for i in range(0, len(examples), batch_size):
            nlp.update(examples[i : i + batch_size], sgd=optimizer, drop=0.1)
    return nlp


def make_raw_text_pipeline(model_dir: Path, *, window: int = 48, stride: int = 32) -> Language:
    """A pipeline shaped like the project's configs, for raw text: the
    BioTokenizer, `fastbioner_sentences`, a tiny transformer fed one sentence
    per span, and fastbioner_ner."""
    nlp = spacy.blank("en", config={"nlp": {"tokenizer": {"@tokenizers": "spacy_fastbioner.BioTokenizer.v1"}}})
    nlp.add_pipe("fastbioner_sentences", name="sentences")
    config = tiny_transformer_config(model_dir, window=window, stride=stride)
    config["model"]["get_spans"]["@span_getters"] = "spacy_fastbioner.sentence_spans.v1"
    nlp.add_pipe("transformer", config=config)
    nlp.add_pipe("fastbioner_ner")
    return nlp


def record_encoder_inputs(trf: Any, run: Callable[[], Any]) -> List[Dict[str, Any]]:
    """The input_ids and attention_mask that a transformer component's
    PyTorch model is called with while `run()` runs, one dict per call.

    trf: A spacy-transformers `Transformer` component (PyTorch).
    run (Callable[[], Any]): What to run, e.g. `lambda: list(nlp.pipe(docs))`.
    """
    fed: List[Dict[str, Any]] = []

    def record(module: Any, args: Any, kwargs: Dict[str, Any]) -> None:
        fed.append({key: kwargs[key].clone() for key in ("input_ids", "attention_mask")})

    hook = trf.model.transformer.register_forward_pre_hook(record, with_kwargs=True)
    try:
        run()
    finally:
        hook.remove()
    return fed


# Texts for comparing an exported pipeline with its PyTorch source: cased and
# uncased words, an empty text and one longer than a transformer window.
EXPORT_TEXTS = [
    "the patients with breast cancer were treated with aspirin",
    "Mice showed no signs of Diabetes after lithium carbonate .",
    "we report that hereditary colitis and tumour levels were high",
    "",
    " ".join(["cancer of the colon"] * 30),
]


def text_entities(nlp: Language, texts: Sequence[str] = EXPORT_TEXTS) -> List[List[Tuple[int, int, str]]]:
    """Each text's entities as (start_char, end_char, label)."""
    return [[(e.start_char, e.end_char, e.label_) for e in doc.ents] for doc in nlp.pipe(texts)]


def head_logits(nlp: Language, texts: Sequence[str] = EXPORT_TEXTS) -> List[Any]:
    """The fastbioner_ner head's per-token logits of the non-empty texts,
    the pipeline run up to the head."""
    docs = [nlp.make_doc(text) for text in texts]
    for name, proc in nlp.pipeline:
        if name == "fastbioner_ner":
            return [x for x in cast(Any, proc).model.predict(docs) if x.size]
        docs = list(cast(Any, proc).pipe(docs))
    raise ValueError(f"the pipeline {nlp.pipe_names} has no fastbioner_ner component")


def make_cased_tiny_bert(path: Path, *, n_layers: int = 2, seed: int = 3) -> Path:
    """A tiny BERT with a cased WordPiece tokenizer (as BioBERT's)."""
    from transformers import BertTokenizerFast

    make_tiny_bert(path, n_layers=n_layers, seed=seed)
    BertTokenizerFast(vocab_file=str(path / "vocab.txt"), do_lower_case=False).save_pretrained(path)
    return path


def int8_matmuls(model_bytes: bytes) -> set:
    """The names of an ONNX graph's MatMuls whose weight comes through a DequantizeLinear
    (static int8, QDQ); the others run in fp32."""
    import onnx

    graph = onnx.load_from_string(model_bytes).graph
    dequantized = {out for node in graph.node if node.op_type == "DequantizeLinear" for out in node.output}
    return {n.name for n in graph.node if n.op_type == "MatMul" and set(n.input) & dequantized}
