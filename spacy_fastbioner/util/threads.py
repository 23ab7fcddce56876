"""Thread limits for the worker processes of `nlp.pipe(texts, n_process=N)`.

spaCy forks its workers where fork is the start method (Linux). Once the
parent has run PyTorch with more than one intra-op thread, a forked child
that runs PyTorch again can wait forever for the parent's OpenMP threads, which
do not exist in the child; N workers with all threads each also oversubscribe
the cores. PyTorch's own DataLoader workers use one thread for both reasons.
Workers started by spawn (macOS, Windows) are fresh interpreters: they inherit
no thread pool and start with torch's default.

Nothing in the plugin sets a limit when a pipeline or component is made: the
callers that start workers call `limit_torch_threads_in_children` (a packaged
pipeline's `load()`, the `annotate` command), as can a user before
`nlp.pipe(..., n_process=N)`.

An annotation run sets its threads in one place, `limit_threads`: each process
that annotates runs PyTorch with a fixed number of intra-op threads, one per
child process by default, so that N processes use N cores without
oversubscribing them. The Hugging Face tokenizers library warns in every child
forked after it used its own thread pool; its parallelism is turned off (unless
the user set TOKENIZERS_PARALLELISM) where the run starts children, since each
child tokenizes its own batches anyway, and in a single process asked for one
thread, which its pool would turn into two cores.
"""

import os
import sys
from typing import Callable, Optional

# n_threads: the children's torch threads, 0 for no limit (the hook, once
# registered, then does nothing: a hook cannot be unregistered).
_settings = {"n_threads": 0, "hooked": 0}


def set_threads(n_threads: int) -> None:
    """Run this process with `n_threads` PyTorch intra-op threads (ONNX
    Runtime follows torch's number), and the tokenizers library's Rust thread
    pool only where that number is above one: its parallel `encode_batch`
    would otherwise take a second core in a run meant to use one.

    n_threads (int): The threads.
    """
    import torch

    if n_threads < 1:
        raise ValueError(f"n_threads must be at least 1, got {n_threads}")
    torch.set_num_threads(n_threads)
    os.environ["TOKENIZERS_PARALLELISM"] = "false" if n_threads == 1 else "true"


def limit_torch_threads_in_children(n_threads: int = 1) -> None:
    """Give every child process forked from now on `n_threads` PyTorch
    intra-op threads and no tokenizers thread pool. Registers one `os.register_at_fork` hook per process
    (a later call changes its number); a no-op where fork does not exist.

    n_threads (int): The torch threads of each forked child.
    """
    if n_threads < 1:
        raise ValueError(f"n_threads must be at least 1, got {n_threads}")
    if not hasattr(os, "register_at_fork"):
        return
    if not _settings["hooked"]:
        os.register_at_fork(after_in_child=_limit_torch_threads)
        _settings["hooked"] = 1
    _settings["n_threads"] = n_threads


def torch_threads_in_children() -> int:
    """RETURNS (int): The torch threads that forked children get; 0 for no limit."""
    return _settings["n_threads"]


def reset_torch_threads_in_children(n_threads: int = 0) -> None:
    """Put back an earlier limit (`torch_threads_in_children()`), or none (0):
    what set a limit for a while (an annotation run, a test) leaves the
    process's later forks as they were.

    n_threads (int): The limit to put back; 0 for none.
    """
    _settings["n_threads"] = n_threads


def _limit_torch_threads() -> None:
    if not _settings["n_threads"]:
        return
    torch = sys.modules.get("torch")  # nothing to limit if the parent never imported it
    if torch is not None:
        torch.set_num_threads(_settings["n_threads"])
    # The tokenizers library's Rust pool stayed in the parent: a child that
    # uses it waits forever. The library turns it off in a forked child by
    # itself only where TOKENIZERS_PARALLELISM is unset (`set_threads(2)` and
    # users set it to "true").
    os.environ["TOKENIZERS_PARALLELISM"] = "false"


def limit_threads(
    n_process: int = 1, n_threads: Optional[int] = None, *, isolate_shards: bool = False
) -> Callable[[], None]:
    """Set the threads of this process and of the processes it forks from now
    on. Call it after loading the pipeline (its components may register fork
    hooks of their own, which run before this one's).

    n_process (int): The processes that will annotate; children are forked when > 1.
    n_threads (Optional[int]): torch threads per annotating process: this one
        when n_process == 1, each child otherwise (default 1). None leaves this
        process at torch's default.
    isolate_shards (bool): One process forked per shard does the work: it
        gets n_threads (default 1, as each child of n_process). More than one
        is safe only if this process has not run PyTorch with several threads
        before: a forked child can then wait forever for OpenMP threads that
        stayed in the parent (the annotate command never runs the pipeline in
        the parent).
    RETURNS (Callable[[], None]): Puts back what it changed (torch's threads,
        TOKENIZERS_PARALLELISM, the forked children's limit), for the end of
        the run: `annotate()` leaves the process's later forks as they were.
    """
    in_children = torch_threads_in_children()
    parallelism = os.environ.get("TOKENIZERS_PARALLELISM")
    own: Optional[int] = None
    # One thread per process means one core: the tokenizer's pool would take another.
    if n_process != 1 or n_threads == 1 or isolate_shards:
        os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    limit_torch_threads_in_children(n_threads or 1)
    if n_threads and n_process == 1:
        import torch

        own = torch.get_num_threads()
        torch.set_num_threads(n_threads)

    def restore() -> None:
        reset_torch_threads_in_children(in_children)
        if parallelism is None:
            os.environ.pop("TOKENIZERS_PARALLELISM", None)
        else:
            os.environ["TOKENIZERS_PARALLELISM"] = parallelism
        if own is not None:
            import torch

            torch.set_num_threads(own)

    return restore
