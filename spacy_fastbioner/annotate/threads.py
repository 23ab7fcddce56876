"""Threads and processes of an annotation run, in one place.

Each process that annotates runs PyTorch with a fixed number of intra-op
threads: one per child process by default, so that N processes use N cores
without oversubscribing them. The Hugging Face tokenizers library warns in
every child forked after it used its own thread pool; its parallelism is
turned off (unless the user set TOKENIZERS_PARALLELISM) where the run starts
children, since each child tokenizes its own batches anyway, and in a single
process asked for one thread, which its pool would turn into two cores.
"""

import os
from typing import Callable, Optional

from ..util.threads import limit_torch_threads_in_children, reset_torch_threads_in_children, torch_threads_in_children


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
