"""Worker processes that end with the annotating process.

`nlp.pipe(n_process=N)` workers wait on their queues forever if the process
that feeds them is killed (`kill -9`, the OOM killer), each holding a copy of
the model. Each worker of an annotation run therefore arms itself when it
starts:

- on Linux, `prctl(PR_SET_PDEATHSIG, SIGKILL)`: the kernel kills it when its
  parent ends (for forkserver workers the parent is the fork server, which
  ends when the annotating process does);
- everywhere, a daemon thread that polls its parent's pid and exits when it
  changes (the worker was re-parented: its parent is gone), the fallback
  where prctl does not exist.

Workers are armed where they start: forked ones by an `os.register_at_fork`
hook, which does nothing outside a run (`guard_workers`), so that it changes
no later fork of the process; spawned and forkserver ones when they unpickle
the pipeline, which carries a `WorkerGuard`.
"""

import ctypes
import os
import signal
import sys
import threading
import time
from contextlib import contextmanager
from typing import Any, Callable, Iterator, Tuple

from spacy.language import Language

PR_SET_PDEATHSIG = 1
POLL_SECONDS = 0.5
GUARD_ATTR = "_fastbioner_worker_guard"
# The annotating process's pid while a run is on (0 otherwise), read by the fork hook in each child.
_run = {"parent": 0, "hooked": False}


def arm_worker(parent: int) -> None:
    """End this process when its parent ends.

    parent (int): The pid of the annotating process.
    """
    if sys.platform.startswith("linux"):
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
        except (OSError, AttributeError):  # no prctl: the watching thread alone
            pass
    ppid = os.getppid()
    # A parent that ended before the signal was asked for: the worker was re-parented already.
    if ppid != parent and os.getpid() != parent and _gone(parent):
        os._exit(1)
    threading.Thread(target=_watch, args=(ppid,), name="fastbioner-parent-watch", daemon=True).start()


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def _watch(ppid: int) -> None:
    while os.getppid() == ppid:
        time.sleep(POLL_SECONDS)
    os._exit(1)


def _after_fork_in_child() -> None:
    parent = _run["parent"]
    if parent:
        _run["parent"] = 0  # this child's own forks are not workers of the run
        arm_worker(parent)


class WorkerGuard:
    """Carried by the pipeline into spawned and forkserver workers: it arms
    the process that unpickles it, unless that is the annotating process."""

    def __init__(self, parent: int = 0) -> None:
        self.parent = parent or os.getpid()

    def __reduce__(self) -> Tuple[Callable[..., Any], Tuple[int]]:
        return _unpickle_guard, (os.getpid(),)


def _unpickle_guard(parent: int) -> WorkerGuard:
    if os.getpid() != parent:
        arm_worker(parent)
    return WorkerGuard(parent)


@contextmanager
def guard_workers(nlp: Language) -> Iterator[None]:
    """Make the workers that `nlp.pipe` starts inside the block end with this
    process: forked ones through a fork hook, spawned ones through the pipeline.

    nlp (Language): The pipeline, which carries a `WorkerGuard` from now on.
    """
    setattr(nlp, GUARD_ATTR, WorkerGuard())
    if hasattr(os, "register_at_fork") and not _run["hooked"]:
        os.register_at_fork(after_in_child=_after_fork_in_child)
        _run["hooked"] = True
    previous = _run["parent"]
    _run["parent"] = os.getpid()
    try:
        yield
    finally:
        _run["parent"] = previous
