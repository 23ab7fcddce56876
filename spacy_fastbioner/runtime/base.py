"""What the ONNX Runtime and OpenVINO transformers share: the Hugging Face
calling convention, and a runner (a session, or a compiled model and its infer
request) built per torch thread count and per process.

A runtime transformer stands where spacy-transformers keeps the PyTorch model
(`trf.model.transformer`): it has the model's `config`, is called with the same
keyword arguments (`input_ids`, `attention_mask`, `token_type_ids`, as torch
tensors or NumPy arrays), and returns a `BaseModelOutput` whose
`last_hidden_state` is a torch tensor.

Threads: the runner uses as many intra-op threads as torch
(`torch.get_num_threads()`, i.e. `torch.set_num_threads` or OMP_NUM_THREADS),
and is rebuilt when that number changes or the process was forked (neither
runtime's thread pool survives `fork`), so `--threads`,
`limit_torch_threads_in_children` (util/threads.py) and
`nlp.pipe(n_process=...)` behave as with the PyTorch transformer. Nothing is
registered at fork: the runner checks the process id when it is used. A forked
child never destroys the runner it inherited: its destructor would join pool
threads that stayed in the parent, and wait for them forever.
"""

import os
from typing import Any, Callable, Dict, List, Optional, Tuple, cast

import numpy
import torch
from transformers import PretrainedConfig
from transformers.modeling_outputs import BaseModelOutput

from .packing import is_packed, max_row_width, run_packed

# Runners inherited through fork, kept alive (see the module docstring).
_INHERITED: List[Any] = []


def as_int64(array: Any) -> numpy.ndarray:
    """RETURNS (numpy.ndarray): A torch tensor or array as a contiguous int64 array."""
    if isinstance(array, torch.Tensor):
        array = array.numpy()
    return numpy.ascontiguousarray(array, dtype="int64")


class RuntimeTransformer:
    """The base of an encoder run by an inference runtime, with the calling
    convention of a Hugging Face model (inference only). A subclass builds its
    runner (`_build_runner`) and runs one batch on it (`_run`).

    config (PretrainedConfig): The Hugging Face config of the exported model.
    """

    runtime = ""
    label = ""

    def __init__(self, config: PretrainedConfig) -> None:
        self.config = config
        self.input_names: List[str] = []
        self._runner: Any = None
        self._runner_key: Optional[Tuple[int, int]] = None
        self._stale = False

    def runner(self) -> Any:
        """The runtime's runner, (re)built for torch's current number of
        threads and for this process.

        RETURNS (Any): What `_build_runner` made.
        """
        key = (torch.get_num_threads(), os.getpid())
        if self._runner is None or self._stale or key != self._runner_key:
            if self._runner is not None and self._runner_key is not None and self._runner_key[1] != key[1]:
                _INHERITED.append(self._runner)
            self._runner = self._build_runner(threads=key[0])
            self._runner_key = key
            self._stale = False
        return self._runner

    def _rebuild_runner(self) -> None:
        """Build the runner again at its next use (e.g. after a settings change)."""
        self._stale = True

    def _build_runner(self, *, threads: int) -> Any:
        raise NotImplementedError

    def _run(self, runner: Any, feed: Dict[str, numpy.ndarray]) -> numpy.ndarray:
        """RETURNS (numpy.ndarray): The last hidden state for one feed of int64 inputs."""
        raise NotImplementedError

    @property
    def device(self) -> torch.device:
        return torch.device("cpu")

    def eval(self) -> "RuntimeTransformer":
        """For the Hugging Face calling convention: the model is inference-only."""
        return self

    @property
    def packed(self) -> bool:
        """Whether the graph takes packed batches (packing.py; `export --packed`)."""
        return is_packed(self.input_names)

    def __call__(self, **inputs: Any) -> BaseModelOutput:
        runner = self.runner()

        def run(feed: Dict[str, Any]) -> numpy.ndarray:
            return self._run(runner, feed)

        if self.packed:
            hidden = run_packed(run, self.input_names, inputs, max_row_width(self.config))
        else:
            missing = [name for name in self.input_names if name not in inputs]
            if missing:
                raise ValueError(f"the {self.label} transformer needs the inputs {missing}, got {sorted(inputs)}")
            hidden = run({name: as_int64(inputs[name]) for name in self.input_names})
        return BaseModelOutput(last_hidden_state=cast(torch.FloatTensor, torch.from_numpy(hidden)))


def v3_transformer_model(
    name: str,
    get_spans: Callable,
    tokenizer_config: Optional[Dict[str, Any]] = None,
    transformer_config: Optional[Dict[str, Any]] = None,
    mixed_precision: bool = False,
    grad_scaler_config: Optional[Dict[str, Any]] = None,
) -> Any:
    """A `spacy-transformers.TransformerModel.v3`, the base of our inference architectures
    (int8 PyTorch, ONNX Runtime, OpenVINO). They take its six settings first, in its order,
    so that their block can replace the transformer model block of a PyTorch pipeline's config.

    name (str): The Hugging Face model name or folder, read only by `initialize`.
    get_spans (Callable[[List[Doc]], List[List[Span]]]): The span getter.
    tokenizer_config (Optional[Dict[str, Any]]): Settings for the Hugging Face tokenizer.
    transformer_config (Optional[Dict[str, Any]]): Settings for the transformer's config.
    mixed_precision (bool): TransformerModel.v3's; no effect on CPU inference.
    grad_scaler_config (Optional[Dict[str, Any]]): TransformerModel.v3's; no effect on CPU inference.
    RETURNS (TransformerModel): The model.
    """
    from spacy_transformers.layers.transformer_model import TransformerModel

    return TransformerModel(
        name,
        get_spans,
        dict(tokenizer_config or {}),
        dict(transformer_config or {}),
        mixed_precision,
        dict(grad_scaler_config or {}),
    )
