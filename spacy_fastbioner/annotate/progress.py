"""The progress bar of an annotation run: documents/s, words/s and ETA."""
import sys
import time
from typing import Any, Optional


class Progress:
    """A tqdm bar over documents, with words/s after it; silent when quiet.

    total (int): The documents of the run (finished shards included).
    initial (int): The documents done already (resumed shards).
    quiet (bool): Show nothing, for logs.
    """

    def __init__(self, total: int, initial: int = 0, *, quiet: bool = False) -> None:
        self.words = 0
        self.start = time.perf_counter()
        self._last = 0.0
        self.bar: Optional[Any] = None
        if not quiet:
            from tqdm import tqdm

            self.bar = tqdm(total=total, initial=initial, unit="doc", file=sys.stderr, dynamic_ncols=True,
                            smoothing=0.05, desc="annotate")

    def update(self, n_docs: int, n_words: int) -> None:
        """Count documents and words done."""
        self.words += n_words
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
