"""Tests for the linking evaluation (spacy_fastbioner.evaluation.linking) and the build-kb,
add-linker and evaluate-linking commands, on tiny PubTator files."""

import json
from pathlib import Path
from typing import List, Tuple

import pytest
import spacy
from spacy.cli._util import app
from typer.testing import CliRunner

import spacy_fastbioner.cli  # noqa: F401  (registers the commands)
from spacy_fastbioner.corpora.readers import read_pubtator
from spacy_fastbioner.evaluation.linking import build_baseline, evaluate_end_to_end, evaluate_linking
from spacy_fastbioner.kb import ConceptKB, build_kb
from spacy_fastbioner.kb.ranking import FEATURES
from spacy_fastbioner.pipeline.linker import FastBioLinker

Doc = Tuple[str, str, List[Tuple[str, str, str]]]  # (pmid, text, [(mention, type, id)])
TRAIN: List[Doc] = [
    ("1", "Breast cancer and lithium.", [("Breast cancer", "Disease", "D001943"), ("lithium", "Chemical", "D008094")]),
    ("2", "Ovarian cancer in women.", [("Ovarian cancer", "Disease", "D010051")]),
    ("3", "Colon cancer and a cold.", [("Colon cancer", "Disease", "D003110"), ("cold", "Disease", "-1")]),
]
DEV: List[Doc] = [
    (
        "10",
        "Breast cancers, ovarian cancer and gout.",
        [
            ("Breast cancers", "Disease", "D001943"),
            ("ovarian cancer", "Disease", "D010051"),
            ("gout", "Disease", "D006073"),
        ],
    ),
    ("11", "Lithium and colon tumors.", [("Lithium", "Chemical", "D008094"), ("colon tumors", "Disease", "D003110")]),
]


def write_pubtator(path: Path, docs: List[Doc]) -> Path:
    """A PubTator file: the title is the text's first word, the abstract the rest."""
    lines: List[str] = []
    for pmid, text, mentions in docs:
        title, abstract = text.split(" ", 1)
        lines += [f"{pmid}|t|{title}", f"{pmid}|a|{abstract}"]
        for mention, type_, concept in mentions:
            start = text.index(mention)
            lines.append(f"{pmid}\t{start}\t{start + len(mention)}\t{mention}\t{type_}\t{concept}")
        lines.append("")
    path.write_text("\n".join(lines) + "\n", encoding="utf8")
    return path


@pytest.fixture
def files(tmp_path: Path) -> Tuple[Path, Path]:
    return write_pubtator(tmp_path / "train.txt", TRAIN), write_pubtator(tmp_path / "dev.txt", DEV)


def test_scores_pairs_ceiling_baseline_and_mentions(files: Tuple[Path, Path]) -> None:
    train, dev = files
    nlp = spacy.blank("en")
    linker = nlp.add_pipe("fastbioner_linker")
    assert isinstance(linker, FastBioLinker)
    linker.set_kb(build_kb(pubtator=[train], ranker=False))
    baseline = build_baseline(read_pubtator(train), {"Disease"})
    assert baseline["breast cancer"] == "D001943" and baseline["cold"] == "-1"
    scores = evaluate_linking(nlp, linker, read_pubtator(dev), {"Disease"}, baseline=baseline)
    doc_level = scores["doc_level"]
    # 4 gold pairs; gout was never seen; "colon tumors" meets "colon cancer" through the synonyms.
    assert doc_level["linker"]["n_gold"] == 4 and doc_level["linker"]["tp"] == 3
    assert doc_level["linker"]["p"] == pytest.approx(100) and doc_level["linker"]["r"] == pytest.approx(75)
    assert doc_level["baseline"]["p"] == pytest.approx(100) and doc_level["baseline"]["r"] == pytest.approx(50)
    assert doc_level["ceiling"]["r"] == pytest.approx(75) and doc_level["ceiling"]["n_reachable"] == 3
    assert scores["unseen_concepts"] == {"n_dev_concepts": 4, "n_unseen": 1, "n_pairs": 4, "n_unseen_pairs": 1}
    mention = scores["mention_level"]
    assert scores["n_mentions"] == 4 and mention["accuracy_at_1"] == pytest.approx(75)
    assert mention["accuracy_at_1_in_kb"] == pytest.approx(100) and mention["n_in_kb"] == 3
    assert mention["recall_at_10"] == pytest.approx(75)
    assert mention["n_nil_pred"] == 1 and mention["n_nil_correct"] == 0


def test_end_to_end_scores_the_pipelines_entities(files: Tuple[Path, Path]) -> None:
    train, dev = files
    nlp = spacy.blank("en")
    ruler = nlp.add_pipe("entity_ruler")
    ruler.add_patterns([{"label": "Disease", "pattern": "gout"}, {"label": "Disease", "pattern": "ovarian cancer"}])
    nlp.add_pipe("fastbioner_linker").set_kb(build_kb(pubtator=[train], ranker=False))
    scores = evaluate_end_to_end(nlp, read_pubtator(dev), {"Disease"})
    # Found: ovarian cancer (linked); gout (never seen: NIL). Missed: breast cancers, colon tumors.
    assert (scores["tp"], scores["n_pred"], scores["n_gold"]) == (1, 1, 4)


def test_nil_gold_counts_right_when_unlinked(files: Tuple[Path, Path]) -> None:
    train, _ = files
    nlp = spacy.blank("en")
    linker = nlp.add_pipe("fastbioner_linker")
    linker.set_kb(build_kb(pubtator=[train], ranker=False))
    scores = evaluate_linking(nlp, linker, [read_pubtator(train)[2]], {"Disease"})
    assert scores["mention_level"]["n_nil_gold"] == 1 and scores["mention_level"]["n_nil_correct"] == 1
    assert scores["mention_level"]["accuracy_at_1"] == pytest.approx(100)


def test_ranker_is_fitted_saved_and_scores_probabilities(tmp_path: Path) -> None:
    mentions = [("breast cancer", "Disease", "D001943"), ("lithium", "Chemical", "D008094")]
    docs = [(str(i), f"Case {i}: breast cancer and lithium.", mentions) for i in range(6)]
    # "gout" with another identifier in each document: in cross-validation its candidates are wrong.
    docs += [(str(10 + i), f"Case {i}: gout and zzz.", [("gout", "Disease", f"D00{i}")]) for i in range(4)]
    train = write_pubtator(tmp_path / "train.txt", docs)
    kb = build_kb(tmp_path / "kb", pubtator=[train])
    assert kb.ranker is not None and len(kb.ranker["coef"]) == len(FEATURES)
    loaded = ConceptKB().from_disk(tmp_path / "kb")
    assert loaded.ranker == kb.ranker
    found = loaded.get_candidates_batch(["breast cancer", "breast"], "Disease", k=3)
    assert 0.5 < found[0][0].score < 1.0 and found[0][0].similarity == 1.0
    assert found[1][0].score < found[0][0].score


def invoke(*args: str) -> Tuple[int, str]:
    result = CliRunner().invoke(app, ["fastbioner", *args])
    return result.exit_code, " ".join(result.output.split())


def test_cli_build_kb_add_linker_and_evaluate(tmp_path: Path, files: Tuple[Path, Path]) -> None:
    train, dev = files
    code, out = invoke("build-kb", str(tmp_path / "kb"), "--pubtator", str(train), "--no-ranker")
    assert code == 0, out
    assert "Saved a KB of 4 concepts" in out and (tmp_path / "kb" / "kb.npz").is_file()
    spacy.blank("en").to_disk(tmp_path / "blank")
    code, out = invoke(
        "add-linker", str(tmp_path / "blank"), str(tmp_path / "kb"), str(tmp_path / "linked"), "-T", "0.5"
    )
    assert code == 0, out
    linked = spacy.load(tmp_path / "linked")
    assert linked.pipe_names == ["fastbioner_linker"] and linked.get_pipe("fastbioner_linker").cfg["threshold"] == 0.5
    output = tmp_path / "results" / "linking.json"
    code, out = invoke(
        "evaluate-linking", str(dev), "--train", str(train), "--labels", "Disease", "--output", str(output)
    )
    assert code == 0, out
    scores = json.loads(output.read_text(encoding="utf8"))
    assert scores["doc_level"]["baseline"]["r"] == pytest.approx(50)
    assert scores["command"].startswith("python -m spacy fastbioner evaluate-linking")
    assert "ceiling" in out and "recall@10" in out


def test_cli_errors(tmp_path: Path, files: Tuple[Path, Path]) -> None:
    code, out = invoke("build-kb", str(tmp_path / "kb"))
    assert code == 1 and "No source given" in out
    bad = tmp_path / "CTD_diseases.tsv"
    bad.write_text("Gout\tMESH:D006073\n", encoding="utf8")
    code, out = invoke("build-kb", str(tmp_path / "kb"), "--ctd", str(bad))
    assert code == 1 and "CTD_diseases.tsv:1: a data row before the '# Fields:' header" in out
    code, out = invoke("evaluate-linking", str(files[1]))
    assert code == 1 and "Expected --train files or a --kb folder" in out
