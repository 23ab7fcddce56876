"""The progress bar of an annotation run: documents/s, words/s and ETA."""

import sys
import time
from typing import Any, Callable, Optional

# Called with (documents done, documents in the run, words done) when the
# annotation starts (after the model is loaded) and after each update.
Monitor = Callable[[int, int, int], None]
# Called with (documents, words) done, by the shard's work in this process or
# a forked child (isolated.py) and the Ray actors.
OnDoc = Callable[[int, int], None]


class Progress:
    """A tqdm bar over documents, with words/s after it; silent when quiet.

    total (int): The documents of the run (finished shards included).
    initial (int): The documents done already (resumed shards).
    quiet (bool): Show nothing, for logs.
    monitor (Optional[Monitor]): Also report to this callback (e.g. a benchmark's).
    """

    def __init__(self, total: int, initial: int = 0, *, quiet: bool = False, monitor: Optional[Monitor] = None) -> None:
        self.words = 0
        self.done, self.total, self.monitor = initial, total, monitor
        self.start = time.perf_counter()
        self._last = 0.0
        self.bar: Optional[Any] = None
        if monitor is not None:
            monitor(self.done, total, 0)
        if not quiet:
            from tqdm import tqdm

            self.bar = tqdm(
                total=total,
                initial=initial,
                unit="doc",
                file=sys.stderr,
                dynamic_ncols=True,
                smoothing=0.05,
                desc="annotate",
            )

    def update(self, n_docs: int, n_words: int) -> None:
        """Count documents and words done."""
        self.words += n_words
        self.done += n_docs
        if self.monitor is not None:
            self.monitor(self.done, self.total, self.words)
        if self.bar is None:
            return
        self.bar.update(n_docs)
        now = time.perf_counter()
        if now - self._last > 0.1:
            self._last = now
            self.bar.set_postfix_str(f"{self.words / max(now - self.start, 1e-9):,.0f} words/s", refresh=False)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
