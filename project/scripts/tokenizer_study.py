"""Print how often spaCy's English tokenizer and the BioTokenizer cut gold
entities of the raw PubTator corpora, and how well the BioTokenizer reproduces
the tokens of the IOB corpora.

Usage: python project/scripts/tokenizer_study.py [DATA_DIR]  (default /work/shared/data)
"""

import sys
from pathlib import Path
from typing import Iterator, List, Tuple

import spacy
from tokenization import alignment_study, boundary_study, token_split_study

PAIRS = [  # raw PubTator file, IOB file with the same documents
    ("raw/NCBI-disease/NCBItrainset_corpus.txt", "NCBI-disease-IOB/train.tsv"),
    ("raw/NCBI-disease/NCBIdevelopset_corpus.txt", "NCBI-disease-IOB/devel.tsv"),
    ("raw/BC5CDR/CDR_TrainingSet.PubTator.txt", "BC5CDR-IOB/train.tsv"),
    ("raw/BC5CDR/CDR_DevelopmentSet.PubTator.txt", "BC5CDR-IOB/devel.tsv"),
]


def read_pubtator(path: Path) -> Iterator[Tuple[str, List[Tuple[int, int]]]]:
    """Yield (title + " " + abstract, mention spans); relation lines are skipped."""
    title, text = "", ""
    spans: List[Tuple[int, int]] = []
    for line in path.read_text(encoding="utf8").splitlines():
        if "|t|" in line[:20]:
            if text:
                yield text, spans
            title, text, spans = line.split("|", 2)[2], "", []
        elif "|a|" in line[:20]:
            text = title + " " + line.split("|", 2)[2]
        elif line.count("\t") >= 3 and line.split("\t")[1].isdigit():
            start, end = map(int, line.split("\t")[1:3])
            spans.append((start, end))
    if text:
        yield text, spans


def read_iob_tokens(path: Path) -> List[str]:
    return [line.split("\t", 1)[0] for line in path.read_text(encoding="utf8").splitlines() if line]


def main(data_dir: Path) -> None:
    en = spacy.blank("en")
    bio = spacy.blank("en", config={"nlp": {"tokenizer": {"@tokenizers": "spacy_fastbioner.BioTokenizer.v1"}}})
    print(
        f"{'file':44} {'ents':>6} {'en cut%':>8} {'bio cut%':>9} | IOB docs same/all, token P/R: {'en':>13} {'bio':>13}"
    )
    for raw_name, iob_name in PAIRS:
        docs = list(read_pubtator(data_dir / raw_name))
        ref = read_iob_tokens(data_dir / iob_name)
        cuts = [boundary_study(docs, nlp.make_doc) for nlp in (en, bio)]
        aligns = [alignment_study([t for t, _ in docs], ref, nlp.make_doc) for nlp in (en, bio)]
        pr = [f"{a['precision']:.4f}/{a['recall']:.4f}" for a in aligns]
        print(
            f"{raw_name:44} {cuts[0]['entities']:>6} {cuts[0]['cut_pct']:>8.2f} {cuts[1]['cut_pct']:>9.2f} "
            f"| bio {aligns[1]['docs_identical']}/{aligns[1]['docs']} (en {aligns[0]['docs_identical']}) {pr[0]:>13} {pr[1]:>13}"
        )
        print(f"    bio cut examples: {cuts[1]['examples'][:5]}")
    print(f"\n{'IOB file':34} {'tokens':>8} {'split further by bio %':>22}")
    for path in sorted(data_dir.glob("*-IOB/*.tsv")):
        study = token_split_study(read_iob_tokens(path), bio.make_doc)
        print(
            f"{str(path.relative_to(data_dir)):34} {study['tokens']:>8} {study['split_pct']:>22.4f} {study['examples'][:5]}"
        )


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "/work/shared/data"))
