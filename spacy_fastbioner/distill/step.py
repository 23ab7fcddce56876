"""The Language-level distillation step, shaped like spaCy v4's
`Language.distill`: the teacher annotates `eg.reference`, the student learns on
`eg.predicted`."""

from contextlib import ExitStack
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Dict, Iterable, List, Optional, Sequence, Tuple, cast

import torch
from spacy.attrs import SENT_START
from spacy.language import Language
from spacy.tokens import Doc
from spacy.training import Example
from spacy.util import registry
from thinc.api import Optimizer
from thinc.types import Floats2d, Ints2d

from ..encoder.transformer import find_transformer, hf_model, hf_tokenizer
from .hidden import capture_layers, hidden_state_loss
from .targets import TeacherTargets, annotate, release_transformer_data, teacher_logits
from .weights import LossWeights, create_dynamic_weights

if TYPE_CHECKING:
    from ..pipeline.ner import FastBioNER

DistillStep = Callable[..., Dict[str, float]]


@registry.misc("spacy_fastbioner.distill_step.v1")
def create_distill_step(
    temperature: float = 2.0,
    weights: Optional[LossWeights] = None,
    student_to_teacher: Optional[Dict[str, str]] = None,
) -> DistillStep:
    """Create the distillation step of FastBioNER, with the teacher run live
    at every step: `spacy_fastbioner.distill_step.v2` without
    `teacher_targets`.

    temperature (float): The softmax temperature of the soft loss.
    weights (Optional[Callable[[float], Dict[str, float]]]): The loss weights
        as a function of training progress; by default
        `spacy_fastbioner.dynamic_weights.v1` with its defaults.
    student_to_teacher (Optional[Dict[str, str]]): The teacher component
        of each distillable student component, when their names differ.
    RETURNS (Callable): `step(teacher, student, examples, *, sgd=None,
        drop=0.0, losses=None, progress=0.0) -> losses`.
    """
    return create_distill_step_v2(temperature, weights, student_to_teacher, None)


@registry.misc("spacy_fastbioner.distill_step.v2")
def create_distill_step_v2(
    temperature: float = 2.0,
    weights: Optional[LossWeights] = None,
    student_to_teacher: Optional[Dict[str, str]] = None,
    teacher_targets: Optional[Path] = None,
) -> DistillStep:
    """Create the distillation step of FastBioNER.

    Each step runs both pipelines' non-trainable annotating components (the
    sentence splitter), so a doc of several sentences gets the same
    transformer windows in the teacher as in the student; takes the teacher's
    logits from the store or from the live teacher; updates the student; and
    leaves nothing of the teacher's (or the student's transformer output) on
    the examples, so memory stays flat however long the corpus.

    temperature (float): The softmax temperature of the soft loss.
    weights (Optional[Callable[[float], Dict[str, float]]]): The loss weights
        as a function of training progress; by default
        `spacy_fastbioner.dynamic_weights.v1` with its defaults.
    student_to_teacher (Optional[Dict[str, str]]): The teacher component
        of each distillable student component, when their names differ.
    teacher_targets (Optional[Path]): A store made from this teacher by
        `spacy fastbioner teacher-targets`: its logits replace the teacher's
        forward pass. Docs missing from it fall back to the live teacher and
        are counted as "teacher_targets_missing" in the losses. The
        hidden-state loss needs the live teacher and cannot use a store.
    RETURNS (Callable): `step(teacher, student, examples, *, sgd=None,
        drop=0.0, losses=None, progress=0.0) -> losses`.
    """
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    get_weights = weights if weights is not None else create_dynamic_weights()
    mapping = dict(student_to_teacher or {})
    store = TeacherTargets(teacher_targets) if teacher_targets is not None else None
    if store is not None and any(get_weights(p).get("hidden", 0.0) > 0.0 for p in (0.0, 0.5, 1.0)):
        raise ValueError(
            "the hidden-state loss (weights.hidden > 0) needs the live teacher's "
            "intermediate layers, which a teacher-targets store does not hold: set "
            "[distillation.step] teacher_targets = null, or weights.hidden = 0"
        )
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
            if store is not None:
                store.check_teacher(teacher)
                store.check_student(student)
            checked.add((id(teacher), id(student)))
        check_same_tokens(examples)
        for eg in examples:
            copy_sentence_starts(eg.reference, eg.predicted)
        annotate(student, [eg.predicted for eg in examples])
        annotate(teacher, [eg.reference for eg in examples])
        check_same_windows(examples)
        w = get_weights(progress)
        use_hidden = w.get("hidden", 0.0) > 0.0 and any(len(eg.predicted) for eg in examples)
        distillable = [
            (name, cast("FastBioNER", proc))
            for name, proc in student.pipeline
            if getattr(proc, "is_distillable", False)
        ]
        try:
            with ExitStack() as stack:
                if use_hidden:
                    layer_map = student_layer_map(teacher, student)
                    s_cap = stack.enter_context(
                        capture_layers(hf_model(find_transformer(student)), range(len(layer_map)))
                    )
                    t_cap = stack.enter_context(capture_layers(hf_model(find_transformer(teacher)), layer_map))
                teacher_scores: Dict[str, List[Floats2d]] = {}
                if w["soft"] > 0.0 or use_hidden:
                    references = [eg.reference for eg in examples]
                    if use_hidden:
                        annotate_with_teacher(teacher, references)
                    for name, _ in distillable:
                        teacher_scores[name] = get_teacher_scores(
                            teacher, mapping.get(name, name), references, store, losses, live=use_hidden
                        )
                for _, proc in student.pipeline:
                    if (
                        not getattr(proc, "is_distillable", False)
                        and hasattr(proc, "update")
                        and hasattr(proc, "model")
                    ):
                        proc.update(examples, drop=drop, sgd=sgd, losses=losses)
                if use_hidden:
                    # Before spaCy's backward pass, which steps the optimizer.
                    loss = hidden_state_loss(s_cap, t_cap, layer_map) * w["hidden"]
                    loss.backward(retain_graph=True)
                    losses["hidden"] = losses.get("hidden", 0.0) + float(loss.detach())
                for name, proc in distillable:
                    proc.distill(
                        teacher.get_pipe(mapping.get(name, name)),
                        examples,
                        drop=drop,
                        sgd=sgd,
                        losses=losses,
                        temperature=temperature,
                        soft_weight=w["soft"],
                        hard_weight=w["hard"],
                        teacher_scores=teacher_scores.get(name),
                    )
        finally:
            # The loop keeps an epoch's examples in memory for the whole run:
            # no transformer output may stay on them.
            release_transformer_data(eg.reference for eg in examples)
            release_transformer_data(eg.predicted for eg in examples)
        return losses

    return step


def get_teacher_scores(
    teacher: Language,
    name: str,
    docs: List[Doc],
    store: Optional[TeacherTargets],
    losses: Dict[str, float],
    *,
    live: bool = False,
) -> List[Floats2d]:
    """The teacher component's logits for docs: from the store where it has
    them, else from the live teacher (counted in `losses` as
    "teacher_targets_missing"). With `live`, the docs carry the teacher's
    transformer output already, and only its head is run."""
    if live:
        pipe = teacher.get_pipe(name)
        return [pipe.model.ops.to_numpy(s) for s in pipe.predict(docs)]  # type: ignore[attr-defined]
    if store is None:
        return teacher_logits(teacher, docs, name)
    found = [store.get(doc) for doc in docs]
    missing = [i for i, table in enumerate(found) if table is None]
    losses["teacher_targets_hit"] = losses.get("teacher_targets_hit", 0.0) + len(docs) - len(missing)
    if missing:
        losses["teacher_targets_missing"] = losses.get("teacher_targets_missing", 0.0) + len(missing)
        for i, table in zip(missing, teacher_logits(teacher, [docs[i] for i in missing], name)):
            found[i] = table
    return [table for table in found if table is not None]


def annotate_with_teacher(teacher: Language, docs: List[Doc]) -> None:
    """Run the teacher's transformer on the docs, for prediction only, so its
    NER head can score them. The teacher's weights are never touched."""
    trf = find_transformer(teacher)
    with torch.no_grad():
        trf.set_annotations(docs, trf.predict(docs))


def check_same_windows(examples: Sequence[Example]) -> None:
    """Raise a ValueError if an example's student and teacher docs are cut
    into different sentences, hence different transformer windows."""
    for i, eg in enumerate(examples):
        student, teacher = sentence_ranges(eg.predicted), sentence_ranges(eg.reference)
        if student != teacher:
            raise ValueError(
                f"example {i} is cut into {len(student)} sentence(s) on the student's side and "
                f"{len(teacher)} on the teacher's, so their transformer windows differ: give both "
                "pipelines the same sentence component (`fastbioner_sentences`; upgrade an older "
                f"pipeline with `spacy fastbioner sentence-windows`): {eg.predicted.text[:60]!r}"
            )


def copy_sentence_starts(source: Doc, target: Doc) -> None:
    """Give a doc without sentence boundaries those of a doc with the same
    tokens: a gold corpus's sentences reach the student's side as they are,
    rather than being cut again by the sentence component."""
    if source.has_annotation("SENT_START") and not target.has_annotation("SENT_START") and len(target) > 1:
        # spaCy's stub types `to_array` as float64; it returns uint64 attribute IDs.
        target.from_array([SENT_START], cast(Ints2d, source.to_array([SENT_START])))


def sentence_ranges(doc: Doc) -> List[Tuple[int, int]]:
    """The (start, end) token range of each sentence; the whole doc where it
    has no sentence boundaries."""
    if len(doc) and doc.has_annotation("SENT_START"):
        return [(sent.start, sent.end) for sent in doc.sents]
    return [(0, len(doc))] if len(doc) else []


def check_compatible(teacher: Language, student: Language) -> None:
    """Raise a ValueError unless teacher and student cut text into the same
    wordpieces and predict the same tags."""
    t_tok = hf_tokenizer(find_transformer(teacher))
    s_tok = hf_tokenizer(find_transformer(student))
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
        if len(eg.predicted) != len(eg.reference) or any(a.text != b.text for a, b in zip(eg.predicted, eg.reference)):
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
    n_student = int(hf_model(find_transformer(student)).config.num_hidden_layers)
    n_teacher = int(hf_model(find_transformer(teacher)).config.num_hidden_layers)
    if n_student != n_teacher:
        raise ValueError(
            "the hidden-state loss needs the student's layer map (meta.json "
            "'fastbioner.layer_map', written by `spacy fastbioner make-student`)"
        )
    return list(range(n_student))
