"""A shard annotated in a forked child process, so that one annotating
process keeps a flat memory profile over any number of shards.

In one long-lived process, glibc's allocator keeps the heap that the
transformer's variable-sized batches fragment: the resident size grows shard
after shard although Python's own objects stay flat (README: Annotating
collections). A child forked per shard shares the loaded pipeline with the
parent (copy-on-write) and returns all of its memory when it exits. The child
sends its progress and its `ShardResult` back through a pipe; the parent
writes the shard, as in-process, so resuming and the manifest are unchanged.

Each child runs with the run's `n_threads`, by default 1, as spaCy's
`n_process` children do: a forked child that runs PyTorch with several
threads can wait forever for OpenMP threads that stayed in a parent which had
run PyTorch with several threads before (see `threads.py`). The annotate
command loads the pipeline and never runs it in the parent, so there more
threads are safe.
"""

import multiprocessing
import os
import sys
from typing import Any, Callable, Optional, TypeVar

from .progress import OnDoc

# The shard's work is passed in (local.py's `process_shard`), so that this
# module imports nothing of local.py's and the imports go one way.
Result = TypeVar("Result")


def can_isolate() -> bool:
    """Whether shards can run in forked children here (Linux)."""
    return sys.platform.startswith("linux")


def run_in_child(process: Callable[..., Result], *args: Any, on_doc: Optional[OnDoc] = None, **kwargs: Any) -> Result:
    """`process(*args, on_doc=..., **kwargs)` in a child process forked for it.

    process (Callable[..., Result]): The shard's work (`local.process_shard`);
        it reports each document's progress through its `on_doc` argument.
    on_doc (Optional[OnDoc]): Called in this process with each document's
        progress, as the child reports it.
    RETURNS (Result): The child's result.
    RAISES (RuntimeError): If the child failed or died, with its reason.
    """
    context = multiprocessing.get_context("fork")
    receiver, sender = context.Pipe(duplex=False)
    # Fork: the pipeline reaches the child by memory, not by pickling.
    child = context.Process(target=_child, args=(sender, os.getpid(), process, args, kwargs), daemon=True)
    child.start()
    sender.close()
    result: Optional[Result] = None
    error: Optional[str] = None
    try:
        while True:
            try:
                kind, payload = receiver.recv()
            except EOFError:
                break
            if kind == "doc":
                if on_doc is not None:
                    on_doc(*payload)
            elif kind == "result":
                result = payload
            else:
                error = payload
    except BaseException:
        child.terminate()
        raise
    finally:
        receiver.close()
        child.join()
    if result is None:
        shard = kwargs.get("shard_id", "?")
        raise RuntimeError(f"the process that annotated shard {shard} failed: {error or f'exit code {child.exitcode}'}")
    return result


def _child(sender: Any, parent: int, process: Callable[..., Any], args: tuple, kwargs: dict) -> None:
    send: Callable[[Any], None] = sender.send

    def on_doc(n_docs: int, n_words: int) -> None:
        if os.getppid() != parent:  # the run was killed: nobody will write this shard
            os._exit(1)
        send(("doc", (n_docs, n_words)))

    try:
        send(("result", process(*args, on_doc=on_doc, **kwargs)))
    except BaseException as err:  # reported to the parent, which stops the run
        send(("error", f"{type(err).__name__}: {err}"))
    finally:
        sender.close()
