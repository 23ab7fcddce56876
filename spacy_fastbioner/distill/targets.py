"""Cached teacher targets: the teacher's tag logits for every token of the
distillation corpus, computed once and read back by the distillation step
instead of running the teacher again at every step.

A store is a folder:
- `meta.json`: the format, the teacher's identity (hashes of its transformer
  and NER head weights, its tags, its wordpiece vocabulary, and its windows:
  the span getter and the wordpiece limit), the counts;
- `index.npy`: per document a 16-byte key (a hash of its tokens, spaces and
  sentence starts), the row of its first token and its number of tokens;
- `logits.f16`: the logits of all documents, (n_tokens, n_tags) float16,
  memory-mapped, so a document is read without reading the whole store.

The teacher's logits depend only on the document as the teacher sees it (its
tokens and sentence windows) and on the teacher, so they are keyed by both.
The hidden-state loss needs the teacher's intermediate layers, which are not
stored: it still needs the live teacher.
"""

import hashlib
import shutil
from pathlib import Path
from typing import Dict, Iterable, Iterator, List, Mapping, Optional, Sequence, Tuple, Union, cast

import numpy
import srsly
from spacy.language import Language
from spacy.pipeline import TrainablePipe
from spacy.tokens import Doc
from thinc.types import Floats2d

from ..encoder.transformer import find_transformer, hf_model, hf_tokenizer, window_settings

FORMAT = "spacy_fastbioner.teacher_targets.v1"
META_FILE = "meta.json"
INDEX_FILE = "index.npy"
LOGITS_FILE = "logits.f16"
INDEX_DTYPE = numpy.dtype([("key", "V16"), ("start", "<i8"), ("length", "<i4")])


class TeacherTargetsError(ValueError):
    """A teacher-targets store that does not fit the teacher or student, or
    that cannot be read."""


def doc_key(doc: Doc) -> bytes:
    """A 16-byte key of what the teacher sees of a doc: its tokens, the
    whitespace after each and its sentence starts (the transformer windows
    follow sentences).

    doc (Doc): The doc, after the pipeline's annotating components.
    RETURNS (bytes): The key.
    """
    h = hashlib.blake2b(digest_size=16)
    h.update("\x1f".join(t.text for t in doc).encode("utf8", "surrogatepass"))
    h.update(bytes(bool(t.whitespace_) for t in doc))
    if doc.has_annotation("SENT_START"):
        h.update(bytes(1 if t.is_sent_start else 0 for t in doc))
    return h.digest()


def _hash_arrays(arrays: Iterable[Tuple[str, numpy.ndarray]]) -> str:
    h = hashlib.sha256()
    for name, array in arrays:
        array = numpy.ascontiguousarray(array)
        h.update(name.encode("utf8"))
        h.update(str(array.dtype).encode("utf8") + str(array.shape).encode("utf8"))
        h.update(array.tobytes())
    return h.hexdigest()


def wordpiece_hash(nlp: Language) -> str:
    """A hash of a pipeline's wordpiece tokenizer: its vocabulary, casing and
    class.

    nlp (Language): A pipeline with an initialized transformer.
    RETURNS (str): The hex digest.
    """
    tokenizer = hf_tokenizer(find_transformer(nlp))
    if tokenizer is None:
        raise TeacherTargetsError("the pipeline's transformer is not initialized")
    vocab = sorted(tokenizer.get_vocab().items())
    info = [type(tokenizer).__name__, getattr(tokenizer, "do_lower_case", None), vocab]
    return hashlib.sha256(srsly.json_dumps(info).encode("utf8")).hexdigest()


def teacher_identity(teacher: Language, ner_name: Optional[str] = None) -> Dict[str, object]:
    """What a store's logits depend on: hashes of the teacher's transformer
    and NER head weights, its tags, its wordpiece vocabulary and the windows
    its transformer reads a doc in (`window_settings`: the span getter's
    window and stride, the wordpiece limit).

    teacher (Language): The teacher pipeline.
    ner_name (Optional[str]): The NER component; the first distillable one
        by default.
    RETURNS (Dict[str, object]): The identity, as stored in `meta.json`.
    """
    name, ner = find_ner(teacher, ner_name)
    state = sorted(hf_model(find_transformer(teacher)).state_dict().items())
    transformer = _hash_arrays((k, v.detach().cpu().numpy()) for k, v in state if hasattr(v, "detach"))
    head = _hash_arrays(
        (f"{node.name}.{p}", ner.model.ops.to_numpy(node.get_param(p)))
        for node in ner.model.walk()
        for p in node.param_names
        if node.has_param(p)
    )
    return {
        "component": name,
        "transformer": transformer,
        "head": head,
        "tags": list(ner.tags),
        "wordpieces": wordpiece_hash(teacher),
        "windows": window_settings(teacher),
    }


def find_ner(nlp: Language, name: Optional[str] = None) -> Tuple[str, TrainablePipe]:
    """The named component, or the first distillable one (`fastbioner_ner`)."""
    if name is not None:
        return name, nlp.get_pipe(name)
    for pipe_name, proc in nlp.pipeline:
        if getattr(proc, "is_distillable", False):
            return pipe_name, proc
    raise TeacherTargetsError(f"the pipeline {nlp.pipe_names} has no distillable NER component")


def annotating_components(nlp: Language) -> List[Tuple[str, object]]:
    """The components that annotate docs without being trained (the
    `fastbioner_sentences` component), in pipeline order."""
    return [(name, proc) for name, proc in nlp.pipeline if not isinstance(proc, TrainablePipe)]


def annotate(nlp: Language, docs: Sequence[Doc]) -> None:
    """Run the pipeline's non-trainable annotating components on the docs, so
    they get the sentence starts (and hence the transformer windows) that the
    pipeline gives them at inference."""
    for _, proc in annotating_components(nlp):
        for doc in docs:
            proc(doc)  # type: ignore[operator]


def teacher_logits(teacher: Language, docs: Sequence[Doc], ner_name: Optional[str] = None) -> List[Floats2d]:
    """Run the teacher's transformer and NER head on docs (already through
    the annotating components), for prediction only, and return its tag
    logits; nothing of the teacher is left on the docs.

    teacher (Language): The teacher.
    docs (Sequence[Doc]): The docs.
    ner_name (Optional[str]): The teacher's NER component.
    RETURNS (List[Floats2d]): Per doc, (n_tokens, n_tags) logits.
    """
    import torch

    _, ner = find_ner(teacher, ner_name)
    trf = find_transformer(teacher)
    try:
        with torch.no_grad():
            trf.set_annotations(docs, trf.predict(docs))
            return [ner.model.ops.to_numpy(s) for s in ner.predict(docs)]
    finally:
        release_transformer_data(docs)


def release_transformer_data(docs: Iterable[Doc]) -> None:
    """Drop the transformer outputs (`doc._.trf_data`) from docs, so that a
    corpus held in memory does not keep one per doc."""
    for doc in docs:
        if Doc.has_extension("trf_data") and doc._.trf_data is not None:
            doc._.trf_data = None


def build_teacher_targets(
    teacher: Language,
    docs: Iterable[Doc],
    output_path: Union[str, Path],
    *,
    batch_size: int = 64,
    total: Optional[int] = None,
    progress: bool = True,
) -> Dict[str, object]:
    """Run the teacher once over docs and store its tag logits.

    teacher (Language): The trained teacher pipeline.
    docs (Iterable[Doc]): The distillation corpus as the student's
        `eg.reference` docs: gold sentences and unlabelled text, tokenized.
        Duplicates are stored once.
    output_path (Union[str, Path]): The store's folder; replaced if present.
    batch_size (int): Docs per teacher batch.
    total (Optional[int]): The number of docs, for the progress bar.
    progress (bool): Show a progress bar on stderr.
    RETURNS (Dict[str, object]): The store's meta.
    """
    from tqdm import tqdm

    output_path = Path(output_path)
    identity = teacher_identity(teacher)
    tmp = output_path.with_name(output_path.name + ".tmp")
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    index: Dict[bytes, Tuple[int, int]] = {}
    n_tokens = 0
    bar = tqdm(total=total, unit="doc", desc="teacher targets", disable=not progress)
    with (tmp / LOGITS_FILE).open("wb") as out:
        for batch in _batches(docs, batch_size):
            annotate(teacher, batch)
            keyed = [(doc_key(doc), doc) for doc in batch]
            seen = set()
            todo = []
            for key, doc in keyed:
                if key not in index and key not in seen and len(doc):
                    seen.add(key)
                    todo.append((key, doc))
            if todo:
                scores = teacher_logits(teacher, [doc for _, doc in todo])
                for (key, doc), table in zip(todo, scores):
                    out.write(numpy.asarray(table, dtype="float16").tobytes())
                    index[key] = (n_tokens, len(doc))
                    n_tokens += len(doc)
            bar.update(len(batch))
    bar.close()
    records = numpy.zeros(len(index), dtype=INDEX_DTYPE)
    for i, (key, (start, length)) in enumerate(index.items()):
        records[i] = (key, start, length)
    numpy.save(tmp / INDEX_FILE, records, allow_pickle=False)
    meta = {
        "format": FORMAT,
        "teacher": identity,
        "n_docs": len(index),
        "n_tokens": n_tokens,
        "n_tags": len(identity["tags"]),  # type: ignore[arg-type]
        "dtype": "float16",
    }
    srsly.write_json(tmp / META_FILE, meta)
    if output_path.exists():
        shutil.rmtree(output_path)
    tmp.rename(output_path)
    return meta


def _batches(docs: Iterable[Doc], size: int) -> Iterator[List[Doc]]:
    batch: List[Doc] = []
    for doc in docs:
        batch.append(doc)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


class TeacherTargets:
    """A read-only teacher-targets store: `get(doc)` gives the teacher's
    logits of a doc, or None where the doc is not in the store."""

    def __init__(self, path: Union[str, Path]) -> None:
        """Open a store.

        path (Union[str, Path]): The store's folder, written by
            `build_teacher_targets`.
        """
        self.path = Path(path)
        meta_path = self.path / META_FILE
        if not meta_path.exists():
            raise TeacherTargetsError(
                f"{meta_path}: not found; expected a teacher-targets store made by `spacy fastbioner teacher-targets`"
            )
        self.meta = srsly.read_json(meta_path)
        if self.meta.get("format") != FORMAT:
            raise TeacherTargetsError(f"{meta_path}: expected format {FORMAT!r}, found {self.meta.get('format')!r}")
        records = numpy.load(self.path / INDEX_FILE, allow_pickle=False)
        self._index = {bytes(r["key"]): (int(r["start"]), int(r["length"])) for r in records}
        n_tokens, n_tags = int(self.meta["n_tokens"]), int(self.meta["n_tags"])
        logits_path = self.path / LOGITS_FILE
        expected = n_tokens * n_tags * 2
        if logits_path.stat().st_size != expected:
            raise TeacherTargetsError(
                f"{logits_path}: expected {expected} bytes ({n_tokens} tokens x {n_tags} tags, "
                f"float16), found {logits_path.stat().st_size}: the store is incomplete"
            )
        self._logits = (
            numpy.memmap(logits_path, dtype="float16", mode="r", shape=(n_tokens, n_tags))
            if n_tokens
            else numpy.zeros((0, n_tags), dtype="float16")
        )

    @property
    def teacher(self) -> Dict[str, object]:
        """RETURNS (Dict[str, object]): The identity of the teacher that made
        the store."""
        return dict(self.meta["teacher"])

    @property
    def tags(self) -> Tuple[str, ...]:
        """RETURNS (Tuple[str, ...]): The tags, the columns of the logits."""
        return tuple(self.meta["teacher"]["tags"])

    def __len__(self) -> int:
        return len(self._index)

    def __contains__(self, doc: Doc) -> bool:
        return doc_key(doc) in self._index

    def get(self, doc: Doc) -> Optional[Floats2d]:
        """The teacher's logits of a doc, as float32, or None if absent.

        doc (Doc): The doc, after the pipeline's annotating components.
        RETURNS (Optional[Floats2d]): (n_tokens, n_tags) logits, or None.
        """
        found = self._index.get(doc_key(doc))
        if found is None:
            return None
        start, length = found
        if length != len(doc):
            return None
        return cast(Floats2d, numpy.asarray(self._logits[start : start + length], dtype="float32"))

    def check_teacher(self, teacher: Language) -> None:
        """Raise a TeacherTargetsError that names what differs, unless the
        store was made by this teacher.

        teacher (Language): The teacher of the distillation.
        """
        self._compare("teacher", self.teacher, teacher_identity(teacher))

    def check_student(self, student: Language) -> None:
        """Raise a TeacherTargetsError that names what differs, unless the
        student predicts the store's tags with the store's wordpieces.

        student (Language): The student of the distillation.
        """
        _, ner = find_ner(student)
        found = {"tags": list(ner.tags), "wordpieces": wordpiece_hash(student)}
        expected = {k: self.teacher[k] for k in found}
        self._compare("student", expected, found)

    def _compare(self, who: str, expected: Mapping[str, object], found: Mapping[str, object]) -> None:
        keys = ("transformer", "head", "tags", "wordpieces", "windows")
        what = {
            "transformer": "transformer weights",
            "head": "NER head weights",
            "tags": "tags",
            "wordpieces": "wordpiece vocabulary",
            "windows": "transformer windows",
        }
        differ = [k for k in keys if k in found and found[k] != expected.get(k)]
        if not differ:
            return
        details = []
        for key in differ:
            if key == "tags":
                details.append(f"tags {found[key]} vs the store's {expected.get(key)}")
            elif key == "windows":
                # A store made before windows were recorded has none: refused,
                # since its logits may come from other windows.
                stored = expected.get(key, "none recorded")
                details.append(f"transformer windows {found[key]} vs the store's {stored}")
            else:
                details.append(
                    f"{what[key]} (hash {str(found[key])[:12]} vs the store's {str(expected.get(key))[:12]})"
                )
        raise TeacherTargetsError(
            f"{self.path / META_FILE}: the {who} does not match the teacher-targets store: "
            + "; ".join(details)
            + ". Make the store again with `spacy fastbioner teacher-targets` from this teacher"
        )


def read_distillation_docs(
    nlp: Language,
    data: Sequence[Union[str, Path]] = (),
    raw: Sequence[Union[str, Path]] = (),
    *,
    raw_limit: int = 0,
    min_length: int = 3,
    max_length: int = 200,
) -> List[Doc]:
    """The teacher's side (`eg.reference`) of a distillation corpus, as the
    student config's readers give it: gold sentences of `.spacy` files
    (`spacy.Corpus.v1`, gold_preproc) and sentences of unlabelled text
    (`spacy_fastbioner.PlainTextCorpus.v1`, split into sentences).

    nlp (Language): The pipeline whose tokenizer makes the docs.
    data (Sequence[Path]): `.spacy` files of gold examples.
    raw (Sequence[Path]): Text files, one text per line.
    raw_limit (int): Read at most this many sentences of each text file (the
        first ones, as the reader's `limit`); 0 for all.
    min_length (int): Skip sentences of fewer tokens (the reader's).
    max_length (int): Skip sentences of more tokens (the reader's); 0: no cap.
    RETURNS (List[Doc]): The docs.
    """
    from spacy.training import Corpus

    from ..corpora.readers import PlainTextCorpus

    docs: List[Doc] = []
    for path in data:
        docs.extend(eg.reference for eg in Corpus(path, gold_preproc=True)(nlp))
    for path in raw:
        reader = PlainTextCorpus(
            path, limit=raw_limit, min_length=min_length, max_length=max_length, split_sentences=True
        )
        docs.extend(eg.reference for eg in reader(nlp))
    return docs
