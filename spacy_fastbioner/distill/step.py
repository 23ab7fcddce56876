"""The Language-level distillation step, shaped like spaCy v4's
`Language.distill`: the teacher annotates `eg.reference`, the student learns on
`eg.predicted`."""
from contextlib import ExitStack
from typing import Callable, Dict, Iterable, List, Optional, Sequence

import torch
from spacy.language import Language
from spacy.training import Example
from spacy.util import registry
from thinc.api import Optimizer

from ..transformer import find_transformer
from .hidden import capture_layers, hidden_state_loss
from .weights import LossWeights, create_dynamic_weights

DistillStep = Callable[..., Dict[str, float]]


@registry.misc("spacy_fastbioner.distill_step.v1")
def create_distill_step(
    temperature: float = 2.0,
    weights: Optional[LossWeights] = None,
    student_to_teacher: Optional[Dict[str, str]] = None,
) -> DistillStep:
    """Create the distillation step of FastBioNER.

    temperature (float): The softmax temperature of the soft loss.
    weights (Optional[Callable[[float], Dict[str, float]]]): The loss weights
        as a function of training progress; by default
        `spacy_fastbioner.dynamic_weights.v1` with its defaults.
    student_to_teacher (Optional[Dict[str, str]]): The teacher component
        of each distillable student component, when their names differ.
    RETURNS (Callable): `step(teacher, student, examples, *, sgd=None,
        drop=0.0, losses=None, progress=0.0) -> losses`.
    """
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    get_weights = weights if weights is not None else create_dynamic_weights()
    mapping = dict(student_to_teacher or {})
    checked: set = set()

    def step(
        teacher: Language,
        student: Language,
        examples: Iterable[Example],
        *,
        sgd: Optional[Optimizer] = None,
        drop: float = 0.0,
        losses: Optional[Dict[str, float]] = None,
        progress: float = 0.0,
    ) -> Dict[str, float]:
        if losses is None:
            losses = {}
        examples = list(examples)
        if (id(teacher), id(student)) not in checked:
            check_compatible(teacher, student)
            checked.add((id(teacher), id(student)))
        check_same_tokens(examples)
        w = get_weights(progress)
        student_trf = find_transformer(student)
        teacher_trf = find_transformer(teacher)
        use_hidden = w.get("hidden", 0.0) > 0.0 and any(len(eg.predicted) for eg in examples)
        with ExitStack() as stack:
            if use_hidden:
                layer_map = student_layer_map(teacher, student)
                s_cap = stack.enter_context(
                    capture_layers(student_trf.model.transformer, range(len(layer_map)))
                )
                t_cap = stack.enter_context(
                    capture_layers(teacher_trf.model.transformer, layer_map)
                )
            if w["soft"] > 0.0 or use_hidden:
                annotate_with_teacher(teacher, [eg.reference for eg in examples])
            distillable = []
            for name, proc in student.pipeline:
                if getattr(proc, "is_distillable", False):
                    distillable.append((name, proc))
                elif hasattr(proc, "update") and hasattr(proc, "model"):
                    proc.update(examples, drop=drop, sgd=sgd, losses=losses)
            if use_hidden:
                # Before spaCy's backward pass, which steps the optimizer.
                loss = hidden_state_loss(s_cap, t_cap, layer_map) * w["hidden"]
                loss.backward(retain_graph=True)
                losses["hidden"] = losses.get("hidden", 0.0) + float(loss.detach())
            for name, proc in distillable:
                teacher_pipe = teacher.get_pipe(mapping.get(name, name))
                proc.distill(
                    teacher_pipe,
                    examples,
                    drop=drop,
                    sgd=sgd,
                    losses=losses,
                    temperature=temperature,
                    soft_weight=w["soft"],
                    hard_weight=w["hard"],
                )
        return losses

    return step


def annotate_with_teacher(teacher: Language, docs: List) -> None:
    """Run the teacher's transformer on the docs, for prediction only, so its
    NER head can score them. The teacher's weights are never touched."""
    trf = find_transformer(teacher)
    with torch.no_grad():
        trf.set_annotations(docs, trf.predict(docs))


def check_compatible(teacher: Language, student: Language) -> None:
    """Raise a ValueError unless teacher and student cut text into the same
    wordpieces and predict the same tags."""
    t_tok = find_transformer(teacher).model.tokenizer
    s_tok = find_transformer(student).model.tokenizer
    if t_tok is None or s_tok is None:
        raise ValueError("teacher and student transformers must be initialized")
    if t_tok.get_vocab() != s_tok.get_vocab() or getattr(t_tok, "do_lower_case", None) != getattr(
        s_tok, "do_lower_case", None
    ):
        raise ValueError(
            "the teacher's and the student's wordpiece tokenizers differ "
            f"({type(t_tok).__name__}, {len(t_tok.get_vocab())} pieces vs "
            f"{type(s_tok).__name__}, {len(s_tok.get_vocab())} pieces): distil a "
            "student made from the teacher (`spacy fastbioner make-student`)"
        )


def check_same_tokens(examples: Sequence[Example]) -> None:
    """Raise a ValueError if an example's two docs have different tokens."""
    for i, eg in enumerate(examples):
        if len(eg.predicted) != len(eg.reference) or any(
            a.text != b.text for a, b in zip(eg.predicted, eg.reference)
        ):
            raise ValueError(
                f"example {i} has different tokens in its predicted (student) "
                "and reference (teacher) docs; distillation needs the same tokens "
                f"on both sides: {eg.predicted.text[:60]!r}"
            )


def student_layer_map(teacher: Language, student: Language) -> List[int]:
    """The teacher layer of each student layer, from the student's meta
    (written by `make_student`); the identity for a student as deep as its
    teacher."""
    info = student.meta.get("fastbioner", {})
    if "layer_map" in info:
        return [int(i) for i in info["layer_map"]]
    n_student = int(find_transformer(student).model.transformer.config.num_hidden_layers)
    n_teacher = int(find_transformer(teacher).model.transformer.config.num_hidden_layers)
    if n_student != n_teacher:
        raise ValueError(
            "the hidden-state loss needs the student's layer map (meta.json "
            "'fastbioner.layer_map', written by `spacy fastbioner make-student`)"
        )
    return list(range(n_student))
