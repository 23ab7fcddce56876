"""The public Python API: `spacy_fastbioner.<name>` for the functions the
README documents, without importing `transformers` until one needs it."""

import inspect
import subprocess
import sys

import spacy_fastbioner
from spacy_fastbioner.distill.loop import distill
from spacy_fastbioner.distill.weights import create_dynamic_weights
from spacy_fastbioner.encoder.student import make_student
from spacy_fastbioner.evaluation.raw import evaluate_raw


def test_public_functions_are_exported():
    assert spacy_fastbioner.make_student is make_student
    assert spacy_fastbioner.distill is distill
    assert spacy_fastbioner.create_dynamic_weights is create_dynamic_weights
    assert spacy_fastbioner.evaluate_raw is evaluate_raw
    from spacy_fastbioner.runtime.quantize import quantize_pipeline

    assert spacy_fastbioner.quantize_pipeline is quantize_pipeline
    for name in [n for n in spacy_fastbioner.__all__ if n != "__version__"]:
        value = getattr(spacy_fastbioner, name)  # raises if a name of __all__ is missing
        # The package's own function or class, under the name it was defined with.
        assert value.__module__.startswith("spacy_fastbioner.") and value.__name__ == name, name
    assert isinstance(spacy_fastbioner.__version__, str) and spacy_fastbioner.__version__[0].isdigit()
    assert set(spacy_fastbioner.__all__) <= set(dir(spacy_fastbioner))


def test_make_student_signature():
    params = inspect.signature(spacy_fastbioner.make_student).parameters
    assert list(params) == ["teacher", "n_layers", "layer_map"]
    assert params["n_layers"].kind is inspect.Parameter.KEYWORD_ONLY and params["n_layers"].default is None
    assert params["layer_map"].kind is inspect.Parameter.KEYWORD_ONLY and params["layer_map"].default == "skip"


def test_import_does_not_import_transformers():
    code = (
        "import sys, spacy_fastbioner\n"
        "assert 'transformers' not in sys.modules, 'imported by the package'\n"
        "from spacy_fastbioner import make_student, distill, evaluate_raw, create_dynamic_weights\n"
        "assert 'transformers' not in sys.modules, 'imported by the API functions'\n"
        "spacy_fastbioner.quantize_pipeline\n"
        "assert 'transformers' in sys.modules\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
