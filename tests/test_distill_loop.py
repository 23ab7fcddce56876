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
