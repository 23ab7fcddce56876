"""spacy-fastbioner: fast biomedical NER for spaCy by dynamic knowledge distillation.

Every registered function is declared as an entry point, so spaCy and thinc find
them in a fresh process without `import spacy_fastbioner`.
"""

from pathlib import Path

from setuptools import find_packages, setup

HERE = Path(__file__).parent
about: dict = {}
exec((HERE / "spacy_fastbioner" / "about.py").read_text(encoding="utf8"), about)
# The runtime extras' pins, in one place (a module that imports nothing).
runtime_pins: dict = {}
exec((HERE / "spacy_fastbioner" / "runtime" / "requirements.py").read_text(encoding="utf8"), runtime_pins)

ENTRY_POINTS = {
    "spacy_factories": [
        "fastbioner_ner = spacy_fastbioner.pipeline.ner:make_fastbioner_ner",
        "fastbioner_sentences = spacy_fastbioner.pipeline.sentences:make_fastbioner_sentences",
        "fastbioner_abbreviations = spacy_fastbioner.pipeline.abbreviations:make_fastbioner_abbreviations",
        "fastbioner_linker = spacy_fastbioner.pipeline.linker:make_fastbioner_linker",
    ],
    "spacy_scorers": [
        "spacy_fastbioner.linker_scorer.v1 = spacy_fastbioner.pipeline.linker:make_linker_scorer",
    ],
    "spacy_architectures": [
        "spacy_fastbioner.TransformerTagger.v1 = spacy_fastbioner.ml.tagger:build_transformer_tagger",
        "spacy_fastbioner.QuantizedTransformerModel.v1 = spacy_fastbioner.runtime.quantize:build_quantized_transformer_model",
        "spacy_fastbioner.OnnxTransformerModel.v1 = spacy_fastbioner.runtime.architecture:build_onnx_transformer_model",
        "spacy_fastbioner.OpenVinoTransformerModel.v1 = spacy_fastbioner.runtime.architecture:build_openvino_transformer_model",
    ],
    "thinc_layers": [
        "spacy_fastbioner.first_wordpiece.v1 = spacy_fastbioner.ml.pooling:first_wordpiece",
    ],
    "spacy_readers": [
        "spacy_fastbioner.IobCorpus.v1 = spacy_fastbioner.corpora.readers:create_iob_reader",
        "spacy_fastbioner.PubTatorCorpus.v1 = spacy_fastbioner.corpora.readers:create_pubtator_reader",
        "spacy_fastbioner.PlainTextCorpus.v1 = spacy_fastbioner.corpora.readers:create_plain_text_reader",
        "spacy_fastbioner.MixedCorpus.v1 = spacy_fastbioner.corpora.readers:create_mixed_reader",
    ],
    "spacy_tokenizers": [
        "spacy_fastbioner.BioTokenizer.v1 = spacy_fastbioner.corpora.tokenizer:create_bio_tokenizer",
    ],
    "spacy_span_getters": [
        "spacy_fastbioner.sentence_spans.v1 = spacy_fastbioner.ml.span_getters:configure_sentence_spans",
    ],
    "spacy_misc": [
        "spacy_fastbioner.distill_step.v1 = spacy_fastbioner.distill.step:create_distill_step",
        "spacy_fastbioner.distill_step.v2 = spacy_fastbioner.distill.step:create_distill_step_v2",
        "spacy_fastbioner.dynamic_weights.v1 = spacy_fastbioner.distill.weights:create_dynamic_weights",
    ],
    "spacy_cli": [
        "spacy_fastbioner = spacy_fastbioner.cli:fastbioner_cli",
    ],
}

setup(
    name=about["__title__"],
    version=about["__version__"],
    description="FastBioNER for spaCy: biomedical NER students distilled from BioBERT teachers",
    long_description=(HERE / "README.md").read_text(encoding="utf8"),
    long_description_content_type="text/markdown",
    license="MIT",
    python_requires=">=3.10",
    packages=find_packages(include=["spacy_fastbioner", "spacy_fastbioner.*"]),
    package_data={"spacy_fastbioner": ["py.typed"]},
    install_requires=[
        "spacy>=3.8,<3.9",
        "spacy-transformers>=1.4,<1.5",
        "transformers>=4.30,<4.53.3",
        "torch>=2.6",
        "thinc>=8.3,<8.4",
        "numpy>=1.19",
        "typer>=0.9",
        "accelerate>=0.26",  # transformers.Trainer, for adapt-encoder
        "srsly>=2.4",
        "wasabi>=0.9",
        "bioc>=2.1",  # BioC XML/JSON for `spacy fastbioner annotate`
        "scikit-learn>=1.2",  # fastbioner_linker: character n-gram vectors, the link ranker (and scipy)
    ],
    extras_require={
        "test": ["pytest>=7", "pytest-timeout>=2.1", "pytest-xdist>=3.5", "hypothesis>=6", "build>=1.0"],
        "lint": ["ruff>=0.6", "mypy>=1.5"],
        # `make docs`: the documentation site (mkdocs.yml).
        "docs": ["mkdocs>=1.6"],
        "benchmark": ["matplotlib>=3.5"],
        # The Ray backend of `spacy fastbioner annotate` (Ray Data's actor pools).
        "ray": ["ray[data]>=2.9"],
        # The ONNX Runtime inference path: onnxruntime to run an exported
        # pipeline, onnx to export and quantise one.
        "onnx": runtime_pins["EXTRAS"]["onnx"],
        # The OpenVINO inference path: openvino to run an exported pipeline,
        # nncf for its static int8, onnx for the export it converts.
        "openvino": runtime_pins["EXTRAS"]["openvino"],
    },
    entry_points=ENTRY_POINTS,
    zip_safe=False,
)
