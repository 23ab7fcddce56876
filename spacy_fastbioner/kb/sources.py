"""Readers of the concept names that users download or train on, as (entity, name, type, count):

- PubTator gold annotations (NCBI-disease, BC5CDR): each mention with its concept identifier;
- NLM MeSH descriptors (`desc20XX.xml`) and supplementary concept records (`supp20XX.xml`),
  streamed with `iterparse` (the files are 300 MB and 600 MB);
- CTD's MEDIC vocabularies `CTD_diseases.tsv` and `CTD_chemicals.tsv`, '#' header lines first.

Identifiers are written as the corpora write them: MeSH "D009369" and "C000002" without
CTD's "MESH:" prefix, OMIM as "OMIM:114480".
"""

import gzip
import xml.etree.ElementTree as ET
from collections import Counter
from itertools import permutations
from pathlib import Path
from typing import IO, Dict, Iterable, Iterator, List, NamedTuple, Optional, Tuple, Union, cast

from ..corpora.readers import CorpusError, PubTatorDocument, read_pubtator
from .names import match_key, split_composite, split_identifiers

DISEASE, CHEMICAL = "Disease", "Chemical"
# MeSH tree branches: C (Diseases) and F03 (Mental Disorders) as CTD's MEDIC takes them;
# D (Chemicals and Drugs).
DISEASE_TREES, CHEMICAL_TREES = ("C", "F03"), ("D",)
# Supplementary concept record classes: 1 regular substance, 2 protocol, 3 rare disease, 4 organism.
SCR_CLASSES = {"1": CHEMICAL, "3": DISEASE}
CTD_COLUMNS = {
    DISEASE: ("DiseaseName", "DiseaseID", "Synonyms"),
    CHEMICAL: ("ChemicalName", "ChemicalID", "Synonyms"),
}


class NameRecord(NamedTuple):
    """A name of a concept: `ConceptKB.add_names` takes these."""

    entity: str
    name: str
    type: str
    freq: int  # how often the source gives this name to this concept


class KBSourceError(ValueError):
    """A vocabulary file that does not hold what its format promises; names `path:line`."""

    def __init__(self, path: Union[str, Path], line: int, message: str) -> None:
        self.path, self.line = Path(path), line
        super().__init__(f"{path}:{line}: {message}" if line else f"{path}: {message}")


def _open(path: Path, expected: str) -> IO[bytes]:
    if not path.is_file():
        raise KBSourceError(path, 0, f"file not found; expected {expected}")
    return cast(IO[bytes], gzip.open(path, "rb")) if path.suffix == ".gz" else path.open("rb")


def read_pubtator_names(path: Union[str, Path], type_map: Optional[Dict[str, str]] = None) -> Iterator[NameRecord]:
    """The gold mentions of a PubTator file as names; see `pubtator_names`.

    path (Union[str, Path]): The file.
    type_map (Optional[Dict[str, str]]): Label renames, as in `read_pubtator` (NCBI-disease's
        four types to "Disease" by default).
    YIELDS (NameRecord): The names.
    """
    try:
        documents = read_pubtator(path, type_map)
    except CorpusError as err:
        raise KBSourceError(err.path, err.line, str(err).split(": ", 1)[-1]) from None
    yield from pubtator_names(documents)


def pubtator_names(documents: Iterable[PubTatorDocument], *, conjuncts: bool = True) -> Iterator[NameRecord]:
    """The gold mentions of PubTator documents, each (identifier, text, label, times seen), in
    first-seen order. Mentions without an identifier ("-1" or none) are skipped; a composite
    identifier ("D001943|D010051") is kept whole, as the corpus links that text, and written
    as it was first seen: "D010051|D001943" elsewhere names the same pair of concepts, and
    counts for the same entity (else the two orders split the pair's prior between them).

    With `conjuncts`, each conjunct of a composite mention is a name of its own concept too,
    after the others ("breast and ovarian cancer", "D001943|D010051": "breast cancer" for
    D001943, "ovarian cancer" for D010051), when the mention splits (`names.split_composite`)
    into as many parts as it has concepts. The corpora do not always write the concepts in
    the order of the conjuncts: of the orders, the one that gives the most parts a name the
    same concept has elsewhere in the documents is taken (the written order on a tie).

    documents (Iterable[PubTatorDocument]): The documents, from `read_pubtator`.
    conjuncts (bool): Add the conjuncts of composite mentions as names.
    YIELDS (NameRecord): The names.
    """
    counts: Counter = Counter()
    composites: Dict[frozenset, str] = {}  # the concepts of a composite -> its first spelling
    split: List[Tuple[str, str, str]] = []  # (text, label, identifier as written) of composites
    for doc in documents:
        for (_, _, text, label), concept in zip(doc.mentions, doc.concept_ids):
            if concept and concept != "-1":
                parts = split_identifiers(concept)
                if len(parts) > 1:
                    if "+" not in concept:
                        split.append((text, label, concept))
                    concept = composites.setdefault(frozenset(parts), concept)
                counts[(concept, text, label)] += 1
    for (concept, text, label), count in counts.items():
        yield NameRecord(concept, text, label, count)
    if conjuncts:
        yield from _conjunct_names(split, counts)


def _conjunct_names(composites: List[Tuple[str, str, str]], counts: Counter) -> Iterator[NameRecord]:
    """The conjuncts of composite mentions as names of their concepts (see `pubtator_names`)."""
    known = {(match_key(text), label, concept) for concept, text, label in counts}
    found: Counter = Counter()
    for text, label, concept in composites:
        parts, ids = split_composite(text), split_identifiers(concept)
        if len(parts) != len(ids) or len(set(ids)) != len(ids):
            continue
        keys = [match_key(part) for part in parts]
        orders = permutations(ids) if len(ids) <= 3 else iter([tuple(ids)])
        best = max(orders, key=lambda order: sum((k, label, c) in known for k, c in zip(keys, order)))
        for part, entity in zip(parts, best):
            found[(entity, part, label)] += 1
    for (entity, part, label), count in found.items():
        yield NameRecord(entity, part, label, count)


def _tree_type(trees: List[str]) -> Optional[str]:
    if any(tree.startswith(DISEASE_TREES) for tree in trees):
        return DISEASE
    if any(tree.startswith(CHEMICAL_TREES) for tree in trees):
        return CHEMICAL
    return None


def _record_names(record: ET.Element, name_path: str) -> List[str]:
    """The record's preferred name, then every term of every concept, without repeats."""
    names = [record.findtext(name_path, "")]
    names.extend(term.text or "" for term in record.iterfind("ConceptList/Concept/TermList/Term/String"))
    return [name for name in dict.fromkeys(n.strip() for n in names) if name]


def _iter_records(path: Path, tag: str, expected: str) -> Iterator[ET.Element]:
    """Stream the `tag` elements of an XML file, freeing each after use."""
    with _open(path, expected) as file_:
        try:
            context = ET.iterparse(file_, events=("start", "end"))
            _, root = next(context)
            if root.tag != tag + "Set":
                raise KBSourceError(path, 1, f"root element <{root.tag}>; expected <{tag}Set> ({expected})")
            for event, elem in context:
                if event == "end" and elem.tag == tag:
                    yield elem
                    root.clear()  # drop the records read so far: memory stays flat
        except ET.ParseError as err:
            line, column = err.position
            raise KBSourceError(
                path, line, f"column {column}: malformed XML ({err.msg}); expected {expected}"
            ) from None


def read_mesh_descriptors(path: Union[str, Path]) -> Iterator[NameRecord]:
    """The names of MeSH descriptors in the Diseases (C, F03) and Chemicals (D) trees.

    path (Union[str, Path]): NLM's `desc20XX.xml` (or .xml.gz): `DescriptorRecordSet` of
        `DescriptorRecord` with `DescriptorUI`, `DescriptorName/String`, `TreeNumberList`
        and `ConceptList/Concept/TermList/Term/String`.
    YIELDS (NameRecord): Each name, count 1; descriptors of other trees are skipped.
    """
    path = Path(path)
    expected = "NLM MeSH descriptor XML (desc20XX.xml)"
    for record in _iter_records(path, "DescriptorRecord", expected):
        ui = (record.findtext("DescriptorUI") or "").strip()
        if not ui:
            raise KBSourceError(path, 0, "a DescriptorRecord without DescriptorUI; expected e.g. D009369")
        type_ = _tree_type([t.text or "" for t in record.iterfind("TreeNumberList/TreeNumber")])
        if type_ is not None:
            for name in _record_names(record, "DescriptorName/String"):
                yield NameRecord(ui, name, type_, 1)


def read_mesh_supplementary(path: Union[str, Path]) -> Iterator[NameRecord]:
    """The names of MeSH supplementary concepts of class 1 (chemicals) and 3 (rare diseases).

    path (Union[str, Path]): NLM's `supp20XX.xml` (or .xml.gz): `SupplementalRecordSet` of
        `SupplementalRecord SCRClass="..."` with `SupplementalRecordUI`,
        `SupplementalRecordName/String` and `ConceptList/Concept/TermList/Term/String`.
    YIELDS (NameRecord): Each name, count 1.
    """
    path = Path(path)
    expected = "NLM MeSH supplementary concept XML (supp20XX.xml)"
    for record in _iter_records(path, "SupplementalRecord", expected):
        ui = (record.findtext("SupplementalRecordUI") or "").strip()
        if not ui:
            raise KBSourceError(path, 0, "a SupplementalRecord without SupplementalRecordUI; expected e.g. C000002")
        type_ = SCR_CLASSES.get(record.get("SCRClass", "1"))
        if type_ is not None:
            for name in _record_names(record, "SupplementalRecordName/String"):
                yield NameRecord(ui, name, type_, 1)


def ctd_identifier(value: str) -> str:
    """CTD's "MESH:D009369" as the corpora write it, "D009369"; "OMIM:114480" stays."""
    value = value.strip()
    return value[len("MESH:") :] if value.startswith("MESH:") else value


def read_ctd(path: Union[str, Path], type_: Optional[str] = None) -> Iterator[NameRecord]:
    """The names and synonyms of CTD's MEDIC diseases or chemicals.

    path (Union[str, Path]): `CTD_diseases.tsv` or `CTD_chemicals.tsv` (or .tsv.gz): '#'
        comment lines, one of them "# Fields:" followed by "# Name<TAB>ID<TAB>...", then
        tab-separated rows; Synonyms are '|'-separated.
    type_ (Optional[str]): "Disease" or "Chemical"; by default from the header's first column.
    YIELDS (NameRecord): Each name, count 1.
    """
    path = Path(path)
    expected = "CTD's CTD_diseases.tsv or CTD_chemicals.tsv ('# Fields:' header, tab-separated rows)"
    columns: Optional[Dict[str, int]] = None
    kind, name_col, id_col, syn_col = "", 0, 0, 0  # set by the header
    fields_next = False
    with _open(path, expected) as file_:
        for i, raw in enumerate(file_, 1):
            line = raw.decode("utf8", errors="replace").rstrip("\r\n")
            if line.startswith("#"):
                header = line.lstrip("#").strip()
                if fields_next and header:
                    columns = {name: n for n, name in enumerate(header.split("\t"))}
                    kind, name_col, id_col, syn_col = _ctd_columns(path, i, columns, type_)
                fields_next = header == "Fields:"
                continue
            if not line.strip():
                continue
            if columns is None:
                raise KBSourceError(path, i, f"a data row before the '# Fields:' header; expected {expected}")
            cols = line.split("\t")
            if len(cols) <= max(name_col, id_col):
                raise KBSourceError(path, i, f"{len(cols)} columns; expected at least {max(name_col, id_col) + 1}")
            entity = ctd_identifier(cols[id_col])
            names = [cols[name_col]] + (cols[syn_col].split("|") if syn_col < len(cols) else [])
            for name in dict.fromkeys(n.strip() for n in names):
                if name:
                    yield NameRecord(entity, name, kind, 1)
    if columns is None:
        raise KBSourceError(path, 0, f"no '# Fields:' header line; expected {expected}")


def _ctd_columns(path: Path, line: int, columns: Dict[str, int], type_: Optional[str]) -> Tuple[str, int, int, int]:
    """The type and the (name, id, synonyms) columns of a CTD header."""
    for kind, names in CTD_COLUMNS.items():
        if names[0] in columns and (type_ is None or type_ == kind):
            missing = [name for name in names if name not in columns]
            if missing:
                raise KBSourceError(path, line, f"header lacks {missing}; expected columns {list(names)}")
            return kind, columns[names[0]], columns[names[1]], columns[names[2]]
    wanted = " or ".join(names[0] for names in CTD_COLUMNS.values())
    raise KBSourceError(path, line, f"header {list(columns)}; expected a first column {wanted}")


def read_mesh(path: Union[str, Path]) -> Iterator[NameRecord]:
    """The names of a MeSH descriptor or supplementary-concept file, told apart by the root
    element in the file's first bytes.

    path (Union[str, Path]): `desc20XX.xml` or `supp20XX.xml` (or .xml.gz).
    YIELDS (NameRecord): Each name, count 1.
    """
    path = Path(path)
    with _open(path, "NLM MeSH XML (desc20XX.xml or supp20XX.xml)") as file_:
        head = file_.read(4096)
    if b"<SupplementalRecordSet" in head:
        return read_mesh_supplementary(path)
    return read_mesh_descriptors(path)
