"""How much a vocabulary extension would shorten the wordpiece sequences of the
domain: for a tokenizer, wordpieces per word on the unlabelled abstracts and on
each corpus's training text (all words, and the words inside gold entities),
and the same if the N most frequent words that it cuts became whole tokens.

This measures the sequence-length side of the question only. Whether the new
tokens pay in F needs adapted teachers with and without them (the new
embeddings start untrained, so they need the MLM adaptation to learn).

Usage: python project/scripts/vocab_study.py ENCODER [--data ../shared/data] --output results/vocab-study
"""

import json
import sys
from collections import Counter
from pathlib import Path
from typing import Dict, Iterator, List, Sequence, Tuple

import typer
from transformers import AutoTokenizer

from spacy_fastbioner.encoder.adapt import pre_tokenizer

CORPORA = ["NCBI-disease", "BC5CDR", "BC4CHEMD"]
SIZES = (0, 500, 1000, 2000, 5000)


def iob_sentences(path: Path) -> Iterator[List[Tuple[str, str]]]:
    sentence: List[Tuple[str, str]] = []
    for line in path.read_text(encoding="utf8").splitlines():
        if not line.strip():
            if sentence:
                yield sentence
            sentence = []
            continue
        token, tag = line.split("\t")[:2]
        sentence.append((token, tag))
    if sentence:
        yield sentence


def piece_counts(tokenizer, words: Counter) -> Dict[str, int]:
    vocab = list(words)
    if not vocab:
        return {}
    ids = tokenizer(vocab, add_special_tokens=False)["input_ids"]
    return {w: len(p) for w, p in zip(vocab, ids)}


def extension_curve(words: Counter, pieces: Dict[str, int], added: Sequence[str]) -> Dict[str, Dict[str, float]]:
    n_words = sum(words.values())
    curve = {}
    for size in SIZES:
        new = set(added[:size])
        n_pieces = sum(c * (1 if w in new else pieces[w]) for w, c in words.items())
        split = sum(c for w, c in words.items() if w not in new and pieces[w] > 1)
        curve[str(size)] = {"wordpieces_per_word": n_pieces / n_words, "share_split": split / n_words}
    return curve


def main(
    encoder: str = typer.Argument(..., help="Tokenizer (a model folder or hub name)"),
    data: Path = typer.Option(Path("../shared/data"), "--data", help="The corpora folder"),
    output: Path = typer.Option(Path("results/vocab-study"), "--output", help="Writes OUTPUT.json and OUTPUT.md"),
) -> None:
    tokenizer = AutoTokenizer.from_pretrained(encoder)
    split = pre_tokenizer(tokenizer)
    unlabelled = Counter(
        w for line in (data / "raw" / "unlabelled-abstracts.txt").open(encoding="utf8") for w in split(line)
    )
    pieces = piece_counts(tokenizer, unlabelled)
    # The candidates: frequent words of the unlabelled abstracts that the tokenizer cuts, by pieces saved.
    added = [w for w, _ in sorted(unlabelled.items(), key=lambda i: -i[1] * (pieces[i[0]] - 1)) if pieces[w] > 1]
    results = {
        "unlabelled abstracts": {
            "words": sum(unlabelled.values()),
            **{"all": extension_curve(unlabelled, pieces, added)},
        }
    }
    for corpus in CORPORA:
        path = data / f"{corpus}-IOB" / "train.tsv"
        if not path.is_file():
            continue
        all_words: Counter = Counter()
        entity_words: Counter = Counter()
        for sentence in iob_sentences(path):
            for token, tag in sentence:
                for word in split(token):
                    all_words[word] += 1
                    if tag != "O":
                        entity_words[word] += 1
        pieces.update(piece_counts(tokenizer, Counter(w for w in all_words if w not in pieces)))
        results[corpus] = {
            "words": sum(all_words.values()),
            "entity_words": sum(entity_words.values()),
            "all": extension_curve(all_words, pieces, added),
            "entity words": extension_curve(entity_words, pieces, added),
        }
    data_out = {
        "command": "python project/scripts/vocab_study.py " + " ".join(sys.argv[1:]),
        "encoder": encoder,
        "sizes": list(SIZES),
        "top_added": added[:50],
        "results": results,
    }
    output.parent.mkdir(parents=True, exist_ok=True)
    output.with_suffix(".json").write_text(json.dumps(data_out, indent=2) + "\n", encoding="utf8")
    lines = [
        "# Vocabulary extension: wordpieces per word",
        "",
        f"Tokenizer `{encoder}`; words as its own pre-tokenizer cuts them. Columns: the N most frequent",
        "words of the unlabelled abstracts that it cuts, added as whole tokens (N = 0: as shipped).",
        "Each cell: wordpieces per word / share of words cut.",
        "",
        "| text | words | " + " | ".join(f"N = {n:,}" for n in SIZES) + " |",
        "| --- | --- |" + " --- |" * len(SIZES),
    ]
    for name, entry in results.items():
        for kind in ("all", "entity words"):
            if kind not in entry:
                continue
            cells = [f"{c['wordpieces_per_word']:.2f} / {100 * c['share_split']:.1f}%" for c in entry[kind].values()]
            n_words = entry["entity_words"] if kind == "entity words" else entry["words"]
            lines.append(f"| {name}, {kind} | {n_words:,} | " + " | ".join(cells) + " |")
    lines += ["", f"Made by `{data_out['command']}`.", ""]
    output.with_suffix(".md").write_text("\n".join(lines), encoding="utf8")
    print("\n".join(lines))


if __name__ == "__main__":
    typer.run(main)
