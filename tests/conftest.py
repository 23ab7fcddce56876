"""Shared fixtures: tiny BERT models built locally, synthetic data, and the
location of the real corpora."""

import os
from pathlib import Path

import pytest
from helpers import (
    make_examples,
    make_pipeline,
    make_tiny_bert,
    synthetic_sentences,
    train_pipeline,
)

REPO = Path(__file__).parent.parent


def pytest_configure(config):
    """Under pytest-xdist, each worker runs PyTorch with its share of the
    cores (`make test`: two workers on two cores, one thread each), and so do
    the processes it starts (OMP_NUM_THREADS), unless OMP_NUM_THREADS is set
    already. At torch's default, every worker runs as many OpenMP threads as
    there are cores, and their spinning waits on the cores the other worker
    holds took about half of the CPU time of the tiny models' training. The
    tests of behaviour at several threads set their threads themselves."""
    workers = os.environ.get("PYTEST_XDIST_WORKER_COUNT")
    if not workers or "OMP_NUM_THREADS" in os.environ:
        return
    import torch

    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    share = max(1, cores // int(workers))
    os.environ["OMP_NUM_THREADS"] = str(share)
    torch.set_num_threads(share)


@pytest.fixture(autouse=True)
def _restore_threads():
    """A test that benchmarks at two threads (`set_threads`) leaves neither
    torch's thread count, nor TOKENIZERS_PARALLELISM, nor a thread limit for
    forked children (`limit_torch_threads_in_children`, whose fork hook stays
    registered) to the tests after it."""
    import torch

    from spacy_fastbioner.util.threads import reset_torch_threads_in_children, torch_threads_in_children

    threads, parallelism = torch.get_num_threads(), os.environ.get("TOKENIZERS_PARALLELISM")
    in_children = torch_threads_in_children()
    yield
    reset_torch_threads_in_children(in_children)
    torch.set_num_threads(threads)
    if parallelism is None:
        os.environ.pop("TOKENIZERS_PARALLELISM", None)
    else:
        os.environ["TOKENIZERS_PARALLELISM"] = parallelism


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """The corpora folder: $FASTBIONER_DATA, by default ../shared/data. Tests
    that need it skip when it is missing, unless FASTBIONER_DATA_REQUIRED=1
    (as in CI), where a missing folder is a failure."""
    path = Path(os.environ.get("FASTBIONER_DATA", REPO.parent / "shared" / "data"))
    if not (path / "NCBI-disease-IOB").is_dir():
        reason = f"corpora not found at {path} (set FASTBIONER_DATA to the folder of ../shared/data)"
        if os.environ.get("FASTBIONER_DATA_REQUIRED") == "1":
            pytest.fail(reason)
        pytest.skip(reason)
    return path


@pytest.fixture(scope="session")
def tiny_bert(tmp_path_factory) -> Path:
    """A 2-layer BERT (hidden 32) with a WordPiece vocab of the test words."""
    return make_tiny_bert(tmp_path_factory.mktemp("tiny_bert"), n_layers=2)


@pytest.fixture(scope="session")
def tiny_bert4(tmp_path_factory) -> Path:
    """A 4-layer BERT for teacher/student tests."""
    return make_tiny_bert(tmp_path_factory.mktemp("tiny_bert4"), n_layers=4, seed=1)


@pytest.fixture(scope="session")
def trained_teacher(tiny_bert4):
    """A tiny teacher trained on the synthetic task."""
    nlp = make_pipeline(tiny_bert4)
    return train_pipeline(nlp, make_examples(nlp, synthetic_sentences(200, seed=1)), epochs=4)


@pytest.fixture(scope="session")
def raw_text_model(tmp_path_factory) -> Path:
    """A tiny pipeline shaped like the project's (BioTokenizer, sentences,
    transformer by sentence, fastbioner_ner), trained a little and saved."""
    from helpers import make_raw_text_pipeline

    path = tmp_path_factory.mktemp("raw_text_model")
    nlp = make_raw_text_pipeline(make_tiny_bert(path / "bert", n_layers=2))
    train_pipeline(nlp, make_examples(nlp, synthetic_sentences(150, seed=1)), epochs=3)
    nlp.to_disk(path / "model")
    return path / "model"
