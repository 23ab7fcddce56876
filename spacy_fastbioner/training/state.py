"""A training run's state between processes, beside the pipeline in
`model-last/training_state/`: the optimizer's moments and update counts, the
loop's counters and the RNG states. No pickle: arrays in an .npz read with
`allow_pickle=False`, the rest in JSON.

Thinc keys optimizer state by `(model or shim id, parameter name)`, and the ids
change from process to process: the state is stored by where each parameter
lives instead (component, position in `model.walk()`, shim).
"""

import json
import random
from pathlib import Path
from typing import Any, Dict, Hashable, Tuple, Union, cast

import numpy
from spacy.language import Language
from thinc.api import Model, Optimizer, get_current_ops

STATE_DIR = "training_state"
ARRAYS = "optimizer.npz"
COUNTERS = "state.json"
_SEP = "|"  # between the parts of an array's name; no parameter name has it


class TrainingStateError(ValueError):
    """A stored training state that does not fit the pipeline or optimizer."""


def parameter_places(nlp: Language) -> Tuple[Dict[Tuple[int, str], str], Dict[str, Tuple[int, str]]]:
    """Where each trainable parameter lives, and back.

    nlp (Language): The pipeline.
    RETURNS (Tuple[Dict, Dict]): {(id, name): place} for the optimizer's keys,
        and {place: (id, name)}; a place is "component/node[/shimN]/name".
    """
    to_place: Dict[Tuple[int, str], str] = {}
    for pipe_name, pipe in nlp.pipeline:
        model = getattr(pipe, "model", None)
        if not isinstance(model, Model):
            continue
        for i, node in enumerate(model.walk()):
            for name in node.param_names:
                to_place.setdefault((node.id, name), f"{pipe_name}/{i}{_SEP}{name}")
            for j, shim in enumerate(node.shims):
                torch_model = getattr(shim, "_model", None)
                for name, _ in getattr(torch_model, "named_parameters", lambda: [])():
                    to_place.setdefault((shim.id, name), f"{pipe_name}/{i}/shim{j}{_SEP}{name}")
    return to_place, {place: key for key, place in to_place.items()}


def save_training_state(path: Union[str, Path], nlp: Language, optimizer: Optimizer, counters: Dict[str, Any]) -> None:
    """Write the optimizer's state, `counters` and the RNG states to `path`.

    path (Path): The folder to write (made if missing).
    nlp (Language): The pipeline being trained.
    optimizer (Optimizer): Its optimizer (Adam or SGD; RAdam's buffer is not kept).
    counters (Dict[str, Any]): The loop's own state, JSON-serialisable.
    """
    if optimizer.use_radam:
        raise TrainingStateError("Resumable training does not store RAdam's buffer: use Adam.v1")
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    to_place, _ = parameter_places(nlp)
    arrays: Dict[str, numpy.ndarray] = {}
    tables = {"mom1": optimizer.mom1, "mom2": optimizer.mom2, "averages": optimizer.averages or {}}
    for table, values in tables.items():
        for key, value in values.items():
            arrays[f"{table}{_SEP}{_place(to_place, key)}"] = _to_numpy(value)
    np_state = cast(Tuple[Any, ...], numpy.random.get_state(legacy=True))
    arrays[f"rng{_SEP}numpy"] = numpy.asarray(np_state[1])
    try:
        import torch

        arrays[f"rng{_SEP}torch"] = torch.get_rng_state().numpy()
    except ImportError:  # pragma: no cover
        pass
    cast(Any, numpy.savez)(path / ARRAYS, **arrays)  # names of any kind; numpy's stubs take `allow_pickle` among them
    state = {
        "counters": counters,
        "nr_update": {_place(to_place, k): v for k, v in optimizer.nr_update.items()},
        "last_seen": {_place(to_place, k): v for k, v in optimizer.last_seen.items()},
        "rng_python": _python_state(),
        "rng_numpy": [np_state[0], int(np_state[2]), int(np_state[3]), float(np_state[4])],
    }
    (path / COUNTERS).write_text(json.dumps(state), encoding="utf8")


def load_training_state(path: Union[str, Path], nlp: Language, optimizer: Optimizer) -> Dict[str, Any]:
    """Restore the optimizer's state and the RNG states from `path`.

    path (Path): A folder written by `save_training_state`.
    nlp (Language): The pipeline, loaded from the same checkpoint.
    optimizer (Optimizer): A fresh optimizer made from the same config; its
        schedules are not advanced here (the caller replays them).
    RETURNS (Dict[str, Any]): The stored counters.
    """
    path = Path(path)
    _, to_key = parameter_places(nlp)
    state = json.loads((path / COUNTERS).read_text(encoding="utf8"))
    with numpy.load(path / ARRAYS, allow_pickle=False) as arrays:
        tables: Dict[str, Dict] = {"mom1": optimizer.mom1, "mom2": optimizer.mom2}
        if optimizer.averages is not None:
            tables["averages"] = optimizer.averages
        for name in arrays.files:
            table, _, place = name.partition(_SEP)
            if table == "rng":
                continue
            if table not in tables:
                raise TrainingStateError(f"{path / ARRAYS}: {table} stored, but the optimizer keeps none")
            tables[table][_key(to_key, place, path)] = get_current_ops().asarray(arrays[name])
        np_rng = state["rng_numpy"]
        numpy.random.set_state((np_rng[0], arrays[f"rng{_SEP}numpy"], np_rng[1], np_rng[2], np_rng[3]))
        if f"rng{_SEP}torch" in arrays.files:
            import torch

            torch.set_rng_state(torch.from_numpy(arrays[f"rng{_SEP}torch"].copy()))
    for place, value in state["nr_update"].items():
        optimizer.nr_update[_key(to_key, place, path)] = value
    for place, value in state["last_seen"].items():
        optimizer.last_seen[_key(to_key, place, path)] = value
    version, internal, gauss = state["rng_python"]
    random.setstate((version, tuple(internal), gauss))
    return state["counters"]


def _place(to_place: Dict[Tuple[int, str], str], key: Hashable) -> str:
    if key not in to_place:
        raise TrainingStateError(f"The optimizer holds state for {key!r}, a parameter of no pipeline component")
    return to_place[key]


def _key(to_key: Dict[str, Tuple[int, str]], place: str, path: Path) -> Tuple[int, str]:
    if place not in to_key:
        raise TrainingStateError(
            f"{path}: state for {place!r}, which this pipeline does not have: the checkpoint and the pipeline differ"
        )
    return to_key[place]


def _to_numpy(value: Any) -> numpy.ndarray:
    get = getattr(value, "get", None)  # cupy
    return numpy.asarray(get() if callable(get) and not isinstance(value, numpy.ndarray) else value)


def _python_state() -> list:
    version, internal, gauss = random.getstate()
    return [version, list(internal), gauss]
