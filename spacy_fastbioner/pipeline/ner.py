"""The `fastbioner_ner` component: BIO token classification on a transformer."""

import warnings
from itertools import islice
from typing import Any, Callable, Dict, Iterable, List, Optional, Sequence, Set, Tuple, cast

import numpy
from spacy.attrs import ENT_ID, ENT_IOB, ENT_KB_ID, ENT_TYPE
from spacy.language import Language
from spacy.pipeline.trainable_pipe import TrainablePipe
from spacy.scorer import get_ner_prf
from spacy.tokens import Doc
from spacy.training import Example, validate_examples, validate_get_examples
from spacy.vocab import Vocab
from thinc.api import Config, Model, NumpyOps, Optimizer, set_dropout_rate
from thinc.types import Floats1d, Floats2d, Ints2d

from ..ml.pooling import first_wordpiece_vectors, reads_first_wordpiece
from ..ml.tagger import FAST_PATH_ATTR
from ..ml.windows import best_context_windows, best_window_alignment
from .confidence import set_entity_confidence
from .decoding import (
    OUTSIDE,
    biluo_to_bio,
    bio_tags,
    entity_columns,
    log_softmax,
    softmax,
    transition_constraints,
    viterbi_flat,
)
from .preset import pin_outside, preset_entities

default_model_config = """
[model]
@architectures = "spacy_fastbioner.TransformerTagger.v1"
nO = null
dropout = 0.1

[model.tok2vec]
@architectures = "spacy-transformers.TransformerListener.v1"
grad_factor = 1.0
upstream = "*"

[model.tok2vec.pooling]
@layers = "spacy_fastbioner.first_wordpiece.v1"
"""
DEFAULT_NER_MODEL = Config().from_str(default_model_config)["model"]
# The token attributes that `set_annotations` writes, in the order of its columns.
ENT_ATTRS = [ENT_IOB, ENT_TYPE, ENT_KB_ID, ENT_ID]
# The logit margin of "O" over every other tag in the table that stands for a
# doc the transformer returned no output for: at temperature 4, p(O) > 0.9999.
OUTSIDE_MARGIN = 50.0


@Language.factory(
    "fastbioner_ner",
    assigns=["doc.ents", "token.ent_iob", "token.ent_type"],
    default_config={
        "model": DEFAULT_NER_MODEL,
        "scorer": {"@scorers": "spacy.ner_scorer.v1"},
    },
    default_score_weights={
        "ents_f": 1.0,
        "ents_p": 0.0,
        "ents_r": 0.0,
        "ents_per_type": None,
    },
)
def make_fastbioner_ner(
    nlp: Language,
    name: str,
    model: Model[List[Doc], List[Floats2d]],
    scorer: Optional[Callable] = get_ner_prf,
) -> "FastBioNER":
    """Create a BIO token classifier for named entities, which writes
    `doc.ents`. One prediction per spaCy token; decoding never produces an
    invalid tag sequence.

    model (Model[List[Doc], List[Floats2d]]): A model that returns a table of
        tag scores (logits) per doc, one row per token.
    scorer (Optional[Callable]): The scoring method.
    """
    return FastBioNER(nlp.vocab, model, name, scorer=scorer)


class FastBioNER(TrainablePipe):
    """Named entity recognition as BIO tagging, with the hooks that knowledge
    distillation needs: per-token tag logits and probabilities, a
    teacher-student loss and `distill`.
    """

    def __init__(
        self,
        vocab: Vocab,
        model: Model[List[Doc], List[Floats2d]],
        name: str = "fastbioner_ner",
        *,
        scorer: Optional[Callable] = get_ner_prf,
    ) -> None:
        """Initialize the component.

        vocab (Vocab): The shared vocabulary.
        model (Model[List[Doc], List[Floats2d]]): The model, returning logits.
        name (str): The component instance name, used in the losses.
        scorer (Optional[Callable]): The scoring method.
        """
        self.vocab = vocab
        self.model = model
        self.name = name
        self.scorer = scorer
        self._warned_no_output = False
        cfg: Dict[str, List[str]] = {"labels": []}
        self.cfg = dict(sorted(cfg.items()))
        self._constraints: Dict[Tuple[str, ...], Tuple[Floats1d, Floats2d]] = {}

    @property
    def labels(self) -> Tuple[str, ...]:
        """RETURNS (Tuple[str]): The entity labels, e.g. ("Disease",)."""
        return tuple(self.cfg["labels"])

    @property
    def tags(self) -> Tuple[str, ...]:
        """RETURNS (Tuple[str]): The BIO tags derived from the labels."""
        return tuple(bio_tags(self.labels))

    @property
    def is_distillable(self) -> bool:
        """RETURNS (bool): Whether the component can learn from a teacher."""
        return True

    @property
    def label_data(self) -> List[str]:
        return list(self.labels)

    def add_label(self, label: str) -> int:
        """Add an entity label.

        label (str): The label to add.
        RETURNS (int): 0 if the label was present already, otherwise 1.
        """
        if not isinstance(label, str):
            raise ValueError(f"[{self.name}] a label must be a string, got {label!r}")
        if label in self.labels:
            return 0
        output_layer = self.model.get_ref("output_layer")
        if output_layer.has_dim("nO") and output_layer.get_dim("nO") is not None:
            raise ValueError(
                f"[{self.name}] cannot add label {label!r}: the model is "
                f"initialized already for the labels {self.labels}"
            )
        self.cfg["labels"].append(label)
        self.vocab.strings.add(label)
        return 1

    def predict(self, docs: Iterable[Doc]) -> List[Floats2d]:
        """Score every tag for every token, without modifying the docs.

        docs (Iterable[Doc]): The documents to predict.
        RETURNS (List[Floats2d]): Per doc, an (n_tokens, n_tags) table of logits.
        """
        docs = list(docs)
        if not any(len(doc) for doc in docs):
            n_tags = len(self.tags)
            return [self.model.ops.alloc2f(len(doc), n_tags) for doc in docs]
        # A token in the overlap of two transformer windows is read from the
        # window where it has the most context on both sides, as in training.
        scores = self._predict_first_wordpiece(docs)
        if scores is None:
            with best_context_windows(self.model, docs):
                scores = self.model.predict(docs)
        return [self._check_scores(doc, s) for doc, s in zip(docs, scores)]

    def _predict_first_wordpiece(self, docs: List[Doc]) -> Optional[List[Floats2d]]:
        """`self.model.predict(docs)` for the default model (a transformer
        listener with first-wordpiece pooling, then the head), with the token
        vectors read straight from `doc._.trf_data`; None where that does not
        apply (another model, or a doc without transformer output). The model
        is recognised by the attribute that `TransformerTagger.v1` sets
        (`FAST_PATH_ATTR`) and its tok2vec by `reads_first_wordpiece`."""
        if not self.model.attrs.get(FAST_PATH_ATTR):
            return None
        if not reads_first_wordpiece(self.model.get_ref("tok2vec")):
            return None
        if not Doc.has_extension("trf_data"):
            return None
        vectors = first_wordpiece_vectors([best_window_alignment(doc._.trf_data) for doc in docs])
        if vectors is None:
            return None
        # The head is the output layer on the docs' concatenated vectors
        # (dropout is off at inference), computed once for the batch without
        # with_array's and the chain's steps. On the CPU the product runs in
        # torch, on torch's threads as the encoder does: thinc's `gemm` (BLIS)
        # is much slower for a few tags, and NumPy's BLAS starts a
        # thread per core, which then spin beside the encoder.
        ops = self.model.ops
        output_layer = self.model.get_ref("output_layer")
        W = cast(Floats2d, output_layer.get_param("W"))
        b = cast(Floats1d, output_layer.get_param("b"))
        lengths = [len(v) for v in vectors]
        if not sum(lengths):
            logits = ops.alloc2f(0, W.shape[0], dtype=W.dtype)
        else:
            X = ops.xp.concatenate([v for v in vectors if len(v)]).astype(W.dtype, copy=False)
            if isinstance(ops, NumpyOps):
                import torch

                product = torch.addmm(torch.from_numpy(b), torch.from_numpy(X), torch.from_numpy(W).T)
                logits = cast(Floats2d, product.numpy())
            else:
                logits = ops.gemm(ops.as_contig(X), W, trans2=True)
                logits += b
        return cast(List[Floats2d], ops.xp.split(logits, numpy.cumsum(lengths[:-1])))

    def _check_scores(self, doc: Doc, scores: Floats2d) -> Floats2d:
        """The doc's score table, if it has one row per token and one column
        per tag. A doc that the transformer returned no output for (its
        `doc._.trf_data` is empty, e.g. after the transformer ran on other
        docs) comes back with no rows: it gets an all-O table of logits, with
        a warning. Any other shape is an error."""
        expected = (len(doc), len(self.tags))
        if scores.shape == expected:
            return scores
        if scores.shape[0] == 0:
            if not self._warned_no_output:
                warnings.warn(
                    f"[{self.name}] the transformer returned no output for a doc of {len(doc)} "
                    "tokens (is its doc._.trf_data set by the pipeline's transformer?); "
                    "its tokens are tagged O. Warned once per component.",
                    stacklevel=3,
                )
                self._warned_no_output = True
            return self._outside(len(doc))
        raise ValueError(
            f"[{self.name}] the model returned a score table of shape {tuple(scores.shape)} for a doc "
            f"of {len(doc)} tokens: expected {expected}, one row per token and one column per "
            f"tag of {self.tags}"
        )

    def predict_proba(self, docs: Iterable[Doc], *, temperature: float = 1.0) -> List[Floats2d]:
        """The per-token tag distributions of the docs, at a temperature.

        docs (Iterable[Doc]): Docs that the upstream transformer has annotated.
        temperature (float): Softmax temperature; > 1 flattens the distributions.
        RETURNS (List[Floats2d]): Per doc, (n_tokens, n_tags) probabilities
            whose columns follow `self.tags`.
        """
        return [softmax(s, temperature) for s in self.predict(docs)]

    def set_annotations(self, docs: Iterable[Doc], scores: List[Floats2d]) -> None:
        """Decode the best valid BIO sequence of each doc and write `doc.ents`.
        Entities already on a doc (e.g. from an entity ruler) are kept as
        they are, as spaCy's `ner` keeps them: new ones are added only where
        they overlap none (pipeline/preset.py).

        docs (Iterable[Doc]): The documents to modify.
        scores (List[Floats2d]): The scores to set, produced by `predict`.
        With `cfg["store_confidence"]` on, each entity also gets its confidence,
        `ent._.fastbioner_confidence` (pipeline/confidence.py).
        """
        docs = list(docs)
        tags = self.tags
        start, trans = self._get_constraints()
        # The batch's tokens are decoded, and their entity attributes
        # computed, in one pass (viterbi_flat, entity_columns); each doc then
        # takes its rows in one `Doc.from_array`, with the knowledge base and
        # entity ids cleared as `Doc.set_ents` clears them, but for the tokens
        # of preset entities, which are decoded as O and keep their rows.
        logits = [self.model.ops.to_numpy(s) for s in scores]
        preset = preset_entities(docs, ENT_ATTRS)
        tables = logits if preset is None else pin_outside(logits, preset[1])
        tag_ids, lengths = viterbi_flat(cast(List[Floats2d], tables), start, trans)
        if preset is not None:
            tag_ids[preset[1]] = tags.index(OUTSIDE)
        hashes = [0 if tag == OUTSIDE else self.vocab.strings.add(tag[2:]) for tag in tags]
        columns = numpy.zeros((len(tag_ids), len(ENT_ATTRS)), dtype="uint64")
        columns[:, :2] = entity_columns(tag_ids, lengths, tags, hashes)
        if preset is not None:
            columns[preset[1]] = preset[0][preset[1]]
        end = 0
        for doc, n in zip(docs, lengths.tolist()):
            end += n
            if n:
                doc.from_array(ENT_ATTRS, cast(Ints2d, columns[end - n : end]))
        if self.cfg.get("store_confidence"):
            set_entity_confidence(tags, docs, logits, None if preset is None else preset[1])

    def update(
        self,
        examples: Iterable[Example],
        *,
        drop: float = 0.0,
        sgd: Optional[Optimizer] = None,
        losses: Optional[Dict[str, float]] = None,
    ) -> Dict[str, float]:
        """Learn from a batch of gold-standard examples.

        examples (Iterable[Example]): A batch of Example objects.
        drop (float): The dropout rate.
        sgd (Optional[Optimizer]): The optimizer.
        losses (Optional[Dict[str, float]]): The losses so far, updated in place.
        RETURNS (Dict[str, float]): The updated losses.
        """
        if losses is None:
            losses = {}
        losses.setdefault(self.name, 0.0)
        examples = list(examples)
        validate_examples(examples, "FastBioNER.update")
        if not any(len(eg.predicted) for eg in examples):
            return losses
        set_dropout_rate(self.model, drop)
        scores, backprop = self._begin_update([eg.predicted for eg in examples])
        loss, d_scores = self.get_loss(examples, scores)
        backprop(d_scores)
        if sgd is not None:
            self.finish_update(sgd)
        losses[self.name] += loss
        return losses

    def _begin_update(self, docs: List[Doc]) -> Tuple[List[Floats2d], Callable[[List[Floats2d]], Any]]:
        """`self.model.begin_update(docs)`, with each token read from the
        transformer window that `predict` reads it from (its best-context
        window): the loss sees the features that prediction uses."""
        with best_context_windows(self.model, docs):
            return self.model.begin_update(docs)

    def get_loss(self, examples: Iterable[Example], scores: List[Floats2d]) -> Tuple[float, List[Floats2d]]:
        """Cross-entropy of the scores against the gold BIO tags, averaged
        over the tokens with a known gold tag. Tokens whose gold tag is missing
        or misaligned are ignored.

        RETURNS (Tuple[float, List[Floats2d]]): The loss and its gradient.
        """
        examples = list(examples)
        validate_examples(examples, "FastBioNER.get_loss")
        targets = [self._gold_targets(eg) for eg in examples]
        return self._cross_entropy(scores, targets, temperature=1.0)

    def get_teacher_student_loss(
        self,
        teacher_scores: List[Floats2d],
        student_scores: List[Floats2d],
        *,
        temperature: float = 1.0,
    ) -> Tuple[float, List[Floats2d]]:
        """T² · KL(teacher_T ‖ student_T) over the per-token tag distributions
        at temperature T, averaged over tokens (Hinton et al., 2015).

        teacher_scores (List[Floats2d]): The teacher's logits, per doc.
        student_scores (List[Floats2d]): The student's logits, per doc.
        temperature (float): The softmax temperature T.
        RETURNS (Tuple[float, List[Floats2d]]): The loss and its gradient with
            respect to the student's logits.
        """
        targets = []
        for teacher in teacher_scores:
            teacher = self.model.ops.to_numpy(teacher)
            targets.append(numpy.asarray(softmax(teacher, temperature)))
        loss, d_scores = self._cross_entropy(student_scores, targets, temperature=temperature)
        # Cross-entropy minus the teacher's entropy is the KL divergence; the
        # gradient is the same. T² keeps the gradient's scale independent of T.
        entropy = -sum(float((t * numpy.log(t + 1e-12)).sum()) for t in targets)
        n_tokens = max(1, sum(len(t) for t in targets))
        loss = (loss - entropy / n_tokens) * temperature**2
        d_scores = [d * temperature**2 for d in d_scores]
        return loss, d_scores

    def distill(
        self,
        teacher_pipe: Optional[TrainablePipe],
        examples: Iterable[Example],
        *,
        drop: float = 0.0,
        sgd: Optional[Optimizer] = None,
        losses: Optional[Dict[str, float]] = None,
        temperature: float = 1.0,
        soft_weight: float = 1.0,
        hard_weight: float = 0.0,
        teacher_scores: Optional[List[Floats2d]] = None,
    ) -> Dict[str, float]:
        """Learn from a teacher's tag distributions and, where the examples
        carry them, the gold tags. Follows spaCy v4's `distill` API:
        `eg.predicted` is the student's doc, and `eg.reference` the teacher's,
        already annotated by the teacher's transformer. The teacher is only run
        for prediction, never updated. Given `teacher_scores` (e.g. read from
        a teacher-targets store), the teacher is not run at all.

        teacher_pipe (Optional[TrainablePipe]): The teacher's component.
        examples (Iterable[Example]): The batch.
        drop (float): The dropout rate.
        sgd (Optional[Optimizer]): The optimizer.
        losses (Optional[Dict[str, float]]): Updated in place, with the total
            under the component's name and the parts under "<name>_soft" and
            "<name>_hard".
        temperature (float): The softmax temperature of the soft loss.
        soft_weight (float): The weight of the soft (teacher) loss.
        hard_weight (float): The weight of the hard (gold tag) loss.
        teacher_scores (Optional[List[Floats2d]]): The teacher's logits per
            example, in place of running `teacher_pipe`.
        RETURNS (Dict[str, float]): The updated losses.
        """
        if losses is None:
            losses = {}
        for key in (self.name, f"{self.name}_soft", f"{self.name}_hard"):
            losses.setdefault(key, 0.0)
        examples = list(examples)
        validate_examples(examples, "FastBioNER.distill")
        if not any(len(eg.predicted) for eg in examples):
            return losses
        if teacher_pipe is not None and tuple(getattr(teacher_pipe, "tags", ())) != self.tags:
            raise ValueError(
                f"[{self.name}] the teacher's tags {getattr(teacher_pipe, 'tags', None)} "
                f"differ from the student's {self.tags}"
            )
        set_dropout_rate(self.model, drop)
        student_scores, backprop = self._begin_update([eg.predicted for eg in examples])
        d_scores = [self.model.ops.alloc2f(*s.shape) for s in student_scores]
        total = 0.0
        if soft_weight > 0.0 and (teacher_pipe is not None or teacher_scores is not None):
            if teacher_scores is None:
                teacher_scores = teacher_pipe.predict([eg.reference for eg in examples])  # type: ignore[union-attr]
            soft, d_soft = self.get_teacher_student_loss(teacher_scores, student_scores, temperature=temperature)
            d_scores = [d + soft_weight * ds for d, ds in zip(d_scores, d_soft)]
            losses[f"{self.name}_soft"] += soft
            total += soft_weight * soft
        if hard_weight > 0.0:
            targets = [self._gold_targets(eg) for eg in examples]
            if any(t.any() for t in targets):
                hard, d_hard = self._cross_entropy(student_scores, targets, temperature=1.0)
                d_scores = [d + hard_weight * dh for d, dh in zip(d_scores, d_hard)]
                losses[f"{self.name}_hard"] += hard
                total += hard_weight * hard
        backprop(d_scores)
        if sgd is not None:
            self.finish_update(sgd)
        losses[self.name] += total
        return losses

    def initialize(
        self,
        get_examples: Callable[[], Iterable[Example]],
        *,
        nlp: Optional[Language] = None,
        labels: Optional[Sequence[str]] = None,
    ) -> None:
        """Initialize for training: the labels from the data (or `labels`),
        then the model's shapes. Given `nlp`, its transformers' windows are
        checked against their encoders' positions (`check_positions`).

        get_examples (Callable[[], Iterable[Example]]): Returns gold examples.
        nlp (Optional[Language]): The pipeline the component is part of.
        labels (Optional[Sequence[str]]): The entity labels, e.g. from
            `spacy init labels`; read from the data when None.
        """
        validate_get_examples(get_examples, "FastBioNER.initialize")
        if nlp is not None:
            # Here, not in the transformer's own initialize (spacy-transformers'):
            # the transformers before this component are initialized by now.
            from ..encoder.transformer import check_positions

            check_positions(nlp)
        if labels is None:
            found: Set[str] = set()
            for eg in get_examples():
                found.update(ent.label_ for ent in eg.reference.ents)
            labels = sorted(found)
        for label in labels:
            self.add_label(label)
        self._require_labels()
        doc_sample = []
        tag_sample = []
        for eg in islice(get_examples(), 10):
            doc_sample.append(eg.predicted)
            tag_sample.append(self._outside(len(eg.predicted)))
        if not doc_sample:
            doc_sample = [Doc(self.vocab, words=["x"])]
            tag_sample = [self._outside(1)]
        self.model.initialize(X=doc_sample, Y=tag_sample)

    def _get_constraints(self) -> Tuple[Floats1d, Floats2d]:
        tags = self.tags
        if tags not in self._constraints:
            self._constraints[tags] = transition_constraints(tags)
        return self._constraints[tags]

    def _outside(self, n_tokens: int) -> Floats2d:
        """Logits that tag every token O by a margin of `OUTSIDE_MARGIN`."""
        table = numpy.full((n_tokens, len(self.tags)), -OUTSIDE_MARGIN, dtype="f")
        table[:, 0] = 0.0
        return self.model.ops.asarray2f(cast(Floats2d, table))

    def _gold_targets(self, eg: Example) -> numpy.ndarray:
        """One-hot gold tags aligned to the predicted tokens; all-zero rows
        where the gold tag is missing, misaligned or of an unknown label."""
        index = {tag: i for i, tag in enumerate(self.tags)}
        table = numpy.zeros((len(eg.predicted), len(index)), dtype="f")
        if eg.reference.has_annotation("ENT_IOB"):
            for i, tag in enumerate(eg.get_aligned_ner()):
                j = index.get(biluo_to_bio(tag) or "")
                if j is not None:
                    table[i, j] = 1.0
        return table

    def _cross_entropy(
        self,
        scores: List[Floats2d],
        targets: Sequence[numpy.ndarray],
        *,
        temperature: float,
    ) -> Tuple[float, List[Floats2d]]:
        """Cross-entropy of softmax(scores / T) against target distributions,
        averaged over the tokens whose target row is not all zero. The
        gradient is with respect to the scores (the logits)."""
        ops = self.model.ops
        n_tokens = max(1, sum(int((t.sum(axis=1) > 0).sum()) for t in targets))
        loss = 0.0
        d_scores = []
        for doc_scores, target in zip(scores, targets):
            log_q = numpy.asarray(log_softmax(ops.to_numpy(doc_scores), temperature))
            mask = target.sum(axis=1, keepdims=True) > 0
            loss -= float((target * log_q).sum())
            d = (numpy.exp(log_q) - target) * mask / (temperature * n_tokens)
            d_scores.append(ops.asarray2f(d.astype("f")))
        return loss / n_tokens, d_scores
