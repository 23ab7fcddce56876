"""`spacy fastbioner build-kb OUTPUT --pubtator FILE ...`: a knowledge base of concept names,
and `spacy fastbioner add-linker PIPELINE KB OUTPUT`: a pipeline with the linker and that KB."""

from pathlib import Path
from typing import List, Optional

from spacy.cli._util import Arg, Opt
from wasabi import msg

from ._util import fastbioner_cli
from .evaluate_raw import parse_type_map


@fastbioner_cli.command("build-kb")
def build_kb_cli(
    # fmt: off
    output: Path = Arg(..., help="Output folder of the KB (kb.json, kb.npz)", file_okay=False),
    pubtator: List[Path] = Opt(
        [], "--pubtator", "-p", help="PubTator training file with concept ids (repeat the option for several)"
    ),
    mesh: List[Path] = Opt(
        [], "--mesh", "-m", help="NLM MeSH desc20XX.xml or supp20XX.xml, optionally .gz (repeat for both)"
    ),
    ctd: List[Path] = Opt(
        [], "--ctd", "-c", help="CTD_diseases.tsv or CTD_chemicals.tsv, optionally .gz (repeat for both)"
    ),
    type_map: Optional[str] = Opt(
        None,
        "--type-map",
        "-t",
        help="PubTator label renames, e.g. 'SpecificDisease=Disease' (default: NCBI-disease's four types to Disease)",
    ),
    no_ranker: bool = Opt(
        False, "--no-ranker", help="Do not fit the link score on the PubTator files (the linker then scores by cosine)"
    ),
    # fmt: on
) -> None:
    """Build a knowledge base of concept names and identifiers from PubTator gold
    annotations, MeSH XML and CTD vocabularies, for the `fastbioner_linker`."""
    from ..kb import KBSourceError, build_kb

    if not (pubtator or mesh or ctd):
        msg.fail("No source given: expected --pubtator, --mesh or --ctd files", exits=1)
    try:
        kb = build_kb(
            output, pubtator=pubtator, mesh=mesh, ctd=ctd, type_map=parse_type_map(type_map), ranker=not no_ranker
        )
    except KBSourceError as err:
        msg.fail("Cannot read a KB source", str(err), exits=1)
    ranker = "a link score fitted" if kb.ranker else "no fitted link score"
    msg.good(
        f"Saved a KB of {kb.get_size_entities():,} concepts and {kb.get_size_aliases():,} names "
        f"({', '.join(kb.types)}; {ranker}) to {output}"
    )


@fastbioner_cli.command("add-linker")
def add_linker_cli(
    # fmt: off
    model: str = Arg(..., help="Pipeline with an NER: a package name or a path"),
    kb_path: Path = Arg(..., help="KB folder from `spacy fastbioner build-kb`", exists=True, file_okay=False),
    output: Path = Arg(..., help="Output folder of the pipeline with the linker", file_okay=False),
    threshold: Optional[float] = Opt(
        None, "--threshold", "-T", help="Least link score; below it an entity stays unlinked (default: the factory's)"
    ),
    name: str = Opt("fastbioner_linker", "--name", "-n", help="Name of the linker in the pipeline"),
    # fmt: on
) -> None:
    """Add a `fastbioner_linker` with a KB at the end of a pipeline and save it:
    its entities then carry `ent.kb_id_` and `ent._.kb_score`."""
    add_linker(model, kb_path, output, threshold=threshold, name=name)


def add_linker(model: str, kb_path: Path, output: Path, *, threshold: Optional[float], name: str) -> None:
    """The body of `add-linker`: load, add, set the KB, save."""
    from ..kb import ConceptKB, KBFormatError
    from ..loading import load_pipeline
    from ..pipeline.linker import FastBioLinker

    try:
        kb = ConceptKB().from_disk(kb_path)
    except KBFormatError as err:
        msg.fail("Cannot read the KB", str(err), exits=1)
    try:
        nlp = load_pipeline(model)
    except (OSError, ValueError) as err:
        msg.fail(f"Cannot load the pipeline {model!r}", str(err), exits=1)
    if name in nlp.pipe_names:
        msg.fail(f"The pipeline already has a component {name!r}: pass another --name", exits=1)
    if not any(nlp.get_pipe_meta(pipe).factory in ("ner", "fastbioner_ner") for pipe in nlp.pipe_names):
        msg.warn(f"{model}: no NER component found; the linker links whatever doc.ents holds")
    config = {} if threshold is None else {"threshold": threshold}
    linker = nlp.add_pipe("fastbioner_linker", name=name, config=config)
    assert isinstance(linker, FastBioLinker)
    linker.set_kb(kb)
    output.mkdir(parents=True, exist_ok=True)
    nlp.to_disk(output)
    msg.good(f"Saved {model} with {name} ({kb.get_size_entities():,} concepts) to {output}")
