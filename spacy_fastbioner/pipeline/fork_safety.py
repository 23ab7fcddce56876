"""Make `nlp.pipe(texts, n_process=N)` work after the pipeline has run in the
parent process.

spaCy forks its worker processes (the default start method on Linux). Once the
parent has run a PyTorch model with more than one intra-op thread, a forked
child that runs PyTorch again waits forever for the parent's OpenMP threads,
which do not exist in the child. PyTorch's own DataLoader workers avoid this by
using one thread; a child forked here does the same, which also keeps N
workers from oversubscribing the cores.
"""
import os
import sys

_registered = False


def make_torch_fork_safe() -> None:
    """Give every process forked from now on one PyTorch intra-op thread.
    Registers an `os.register_at_fork` hook once per process; a no-op where
    fork does not exist.
    """
    global _registered
    if _registered or not hasattr(os, "register_at_fork"):
        return
    os.register_at_fork(after_in_child=_one_torch_thread)
    _registered = True


def _one_torch_thread() -> None:
    torch = sys.modules.get("torch")  # nothing to do if the parent never imported it
    if torch is not None:
        torch.set_num_threads(1)
