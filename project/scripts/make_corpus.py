"""Check a folder of IOB files (train.tsv, devel.tsv, test.tsv) and convert it
to spaCy's binary format (train.spacy, dev.spacy, test.spacy)."""

from pathlib import Path

import spacy
import srsly
import typer
from spacy.tokens import DocBin
from wasabi import msg

from spacy_fastbioner.corpora.readers import IobCorpus

SPLITS = {"train.tsv": "train.spacy", "devel.tsv": "dev.spacy", "test.tsv": "test.spacy"}


def main(input_dir: Path, output_dir: Path, limit: int = typer.Option(0, help="Sentences per split; 0 for all")):
    nlp = spacy.blank("en")
    output_dir.mkdir(parents=True, exist_ok=True)
    stats = {}
    for src, dest in SPLITS.items():
        corpus = IobCorpus(input_dir / src, limit=limit)
        docs = [eg.reference for eg in corpus(nlp)]
        DocBin(docs=docs, store_user_data=False).to_disk(output_dir / dest)
        stats[dest] = {"sentences": len(docs), "entities": sum(len(d.ents) for d in docs)}
        msg.good(f"{input_dir / src} -> {output_dir / dest}: {stats[dest]}")
    srsly.write_json(output_dir / "stats.json", stats)


if __name__ == "__main__":
    typer.run(main)
