"""Make a student pipeline from a teacher: fewer transformer layers, chosen by
a layer map, with the teacher's embeddings, those layers and its NER head."""

from typing import List, Optional, Sequence, Tuple, Union

import torch
from spacy.language import Language
from spacy.util import load_model_from_config

from .transformer import count_parameters, find_transformer, hf_model

LayerMap = Union[str, Sequence[int]]
LAYER_MAPS = ("skip", "first", "last")


def select_layers(n_teacher: int, n_layers: int, layer_map: LayerMap = "skip") -> List[int]:
    """The teacher layers (0-based) that the student keeps, in order.

    n_teacher (int): The teacher's number of layers.
    n_layers (int): The student's number of layers.
    layer_map (Union[str, Sequence[int]]): "skip" keeps every other layer,
        ending with the last (as PKD and DistilBERT); "first" the bottom
        layers; "last" the top layers; or an explicit list of layer indices.
    RETURNS (List[int]): The kept layers.
    """
    if isinstance(layer_map, str):
        if layer_map not in LAYER_MAPS:
            raise ValueError(
                f"unknown layer map {layer_map!r}: expected one of {LAYER_MAPS} or a list of layer indices"
            )
        if not 1 <= n_layers <= n_teacher:
            raise ValueError(f"a student needs between 1 and {n_teacher} layers, got {n_layers}")
        if layer_map == "first":
            return list(range(n_layers))
        if layer_map == "last":
            return list(range(n_teacher - n_layers, n_teacher))
        return [round((i + 1) * n_teacher / n_layers) - 1 for i in range(n_layers)]
    layers = [int(i) for i in layer_map]
    if not layers or any(not 0 <= i < n_teacher for i in layers):
        raise ValueError(f"layer map {layers} must list layers between 0 and {n_teacher - 1}")
    if sorted(set(layers)) != layers:
        raise ValueError(f"layer map {layers} must be strictly increasing")
    return layers


def make_student(
    teacher: Language,
    *,
    n_layers: Optional[int] = None,
    layer_map: LayerMap = "skip",
) -> Language:
    """Make a student pipeline from a trained teacher pipeline. The student is
    an ordinary spaCy pipeline whose transformer keeps `n_layers` of the
    teacher's layers, with the teacher's embeddings and NER head. The layer map
    is recorded in `nlp.meta["fastbioner"]`. The teacher is not changed.

    teacher (Language): The teacher pipeline.
    n_layers (Optional[int]): The student's number of layers; half the
        teacher's (rounded up) when None.
    layer_map (Union[str, Sequence[int]]): See `select_layers`.
    RETURNS (Language): The student pipeline.
    """
    teacher_hf = hf_model(find_transformer(teacher))
    n_teacher = int(teacher_hf.config.num_hidden_layers)
    if n_layers is None:
        n_layers = len(layer_map) if not isinstance(layer_map, str) else (n_teacher + 1) // 2
    layers = select_layers(n_teacher, n_layers, layer_map)
    if len(layers) != n_layers:
        raise ValueError(f"layer map {layers} does not have {n_layers} layers")
    student = load_model_from_config(teacher.config, auto_fill=False, validate=False)
    student.from_bytes(teacher.to_bytes())
    trf = find_transformer(student)
    hf = hf_model(trf)
    encoder, encoder_layers = _encoder(hf)
    encoder.layer = torch.nn.ModuleList([encoder_layers[i] for i in layers])
    hf.config.num_hidden_layers = n_layers
    trf_model_cfg = student.config["components"][trf.name]["model"]
    trf_model_cfg["transformer_config"] = {
        **dict(trf_model_cfg.get("transformer_config", {})),
        "num_hidden_layers": n_layers,
    }
    student.meta["name"] = f"{teacher.meta.get('name', 'pipeline')}_student"
    student.meta["fastbioner"] = {
        "teacher_name": teacher.meta.get("name"),
        "teacher_version": teacher.meta.get("version"),
        "teacher_layers": n_teacher,
        "student_layers": n_layers,
        "layer_map": layers,
        "layer_map_name": layer_map if isinstance(layer_map, str) else "explicit",
        "teacher_parameters": count_parameters(teacher),
        "student_parameters": count_parameters(student),
    }
    return student


def _encoder(hf: torch.nn.Module) -> Tuple[torch.nn.Module, torch.nn.ModuleList]:
    """The model's encoder and its list of layers (`encoder.layer`)."""
    encoder = getattr(hf, "encoder", None)
    layers = getattr(encoder, "layer", None)
    if not isinstance(encoder, torch.nn.Module) or not isinstance(layers, torch.nn.ModuleList):
        raise ValueError(
            f"cannot find the encoder layers of {type(hf).__name__}: only "
            "BERT-like models (model.encoder.layer) are supported"
        )
    return encoder, layers
