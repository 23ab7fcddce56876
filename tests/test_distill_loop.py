"""The distillation loop's bookkeeping."""

from spacy_fastbioner.distill.loop import with_last


def test_with_last_flags_only_the_final_batch():
    assert list(with_last(iter([]))) == []
    assert list(with_last(["a"])) == [(0, "a", True)]
    assert list(with_last(iter(["a", "b", "c"]))) == [(0, "a", False), (1, "b", False), (2, "c", True)]


def test_with_last_reads_one_ahead_lazily():
    def endless():
        i = 0
        while True:
            yield i
            i += 1

    taken = []
    for step, value, last in with_last(endless()):
        taken.append((step, value, last))
        if step == 3:
            break
    assert taken == [(i, i, False) for i in range(4)]


def test_freed_heap_memory_is_returned_on_linux():
    """glibc keeps freed heap memory mapped; the loop returns it every
    TRIM_EVERY steps, so a long run's RSS does not grow with the corpus."""
    import sys

    import numpy

    from spacy_fastbioner.util.process_memory import _malloc_trim, release_free_memory, rss_mb

    if not sys.platform.startswith("linux"):
        assert _malloc_trim() is None
        return
    assert callable(_malloc_trim())
    # Many small blocks (below glibc's mmap threshold), freed: mapped until trimmed.
    blocks = [numpy.ones(16_000, dtype="f") for _ in range(8_000)]  # ~490 MiB
    del blocks[:-1]
    before = rss_mb()
    release_free_memory()
    assert rss_mb() < before - 100
