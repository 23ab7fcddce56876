"""One run at a time per output folder: a lock file that names its run's pid.

Where `fcntl` exists, the lock is an `flock` on the file, held for the run:
the kernel releases it when the run ends in any way (kill -9 too), so a lock
left by a dead run is taken over without asking. Elsewhere the file is
created with O_EXCL, and one whose pid is no longer running is taken over.
"""

import os
from pathlib import Path
from types import TracebackType
from typing import IO, Optional, Type

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None  # type: ignore[assignment]

LOCK = ".annotate.lock"


class OutputLocked(RuntimeError):
    """Another run is writing to the output folder."""


class OutputLock:
    """Hold the lock of an output folder for a run (a context manager).

    output (Path): The output folder, created if missing.
    """

    def __init__(self, output: Path) -> None:
        self.path = Path(output) / LOCK
        self._file: Optional[IO[str]] = None
        self._created = False  # the O_EXCL lock (no fcntl) is held

    def acquire(self) -> "OutputLock":
        """Take the lock.

        RAISES (OutputLocked): If another live run holds it.
        """
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if fcntl is not None:
            file_ = self.path.open("a+", encoding="utf8")
            try:
                fcntl.flock(file_.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                file_.seek(0)
                holder = file_.read().strip() or "?"
                file_.close()
                raise self._locked(holder) from None
            file_.seek(0)
            file_.truncate()
            file_.write(f"{os.getpid()}\n")
            file_.flush()
            self._file = file_
            return self
        for _ in range(2):
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
            except FileExistsError:
                holder = self.path.read_text(encoding="utf8").strip()
                if holder.isdigit() and _alive(int(holder)):
                    raise self._locked(holder) from None
                self.path.unlink(missing_ok=True)  # a dead run's lock: taken over
                continue
            os.write(fd, f"{os.getpid()}\n".encode())
            os.close(fd)
            self._created = True
            return self
        raise self._locked("?")

    def release(self) -> None:
        """Give the lock back (the file stays where flock is used: removing it
        would let a third run lock a new file while a second holds the old)."""
        if self._file is not None:
            self._file.close()
            self._file = None
        elif self._created:
            self.path.unlink(missing_ok=True)
            self._created = False

    def _locked(self, holder: str) -> OutputLocked:
        return OutputLocked(
            f"{self.path.parent} is being written by another annotate run (pid {holder}, lock {self.path}); "
            "wait for it to end, or use another --output folder"
        )

    def __enter__(self) -> "OutputLock":
        return self if self.held else self.acquire()

    @property
    def held(self) -> bool:
        """Whether this object holds the lock."""
        return self._file is not None or self._created

    def __exit__(
        self, kind: Optional[Type[BaseException]], value: Optional[BaseException], tb: Optional[TracebackType]
    ) -> None:
        self.release()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
