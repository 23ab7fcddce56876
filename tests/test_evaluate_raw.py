"""Tests for spacy_fastbioner.evaluation.raw and `spacy fastbioner evaluate-raw`,
with a rule-based stand-in pipeline (BioTokenizer + entity_ruler) so that
every prediction is known in advance."""

import json
from pathlib import Path
from typing import List, Tuple

import pytest
import spacy
from spacy.cli._util import app
from spacy.language import Language
from tokenization import boundary_study
from typer.testing import CliRunner

import spacy_fastbioner.cli  # noqa: F401  (registers the commands)
from spacy_fastbioner.corpora.readers import read_pubtator
from spacy_fastbioner.evaluation.raw import _max_disjoint, evaluate_raw, evaluate_token_level

TITLE = "Proctocolitis and breast cancer after aspirin."
ABSTRACT = "Lithium carbonate caused diabetes in mice."
TEXT = f"{TITLE} {ABSTRACT}"
# (mention, label, occurrence): "colitis" is cut inside the token "Proctocolitis";
# "Lithium" overlaps "Lithium carbonate".
GOLD = [
    ("colitis", "Disease"),
    ("breast cancer", "Disease"),
    ("aspirin", "Chemical"),
    ("Lithium carbonate", "Chemical"),
    ("Lithium", "Chemical"),
    ("diabetes", "Disease"),
]
# The stand-in pipeline finds "aspirin" with the wrong label and "mice" wrongly.
PATTERNS = [
    ("breast cancer", "Disease"),
    ("aspirin", "Disease"),
    ("Lithium carbonate", "Chemical"),
    ("mice", "Disease"),
]


def pubtator() -> str:
    lines = [f"1|t|{TITLE}", f"1|a|{ABSTRACT}"]
    for mention, label in GOLD + GOLD[1:2]:  # one mention listed twice
        start = TEXT.index(mention)
        lines.append(f"1\t{start}\t{start + len(mention)}\t{mention}\t{label}\tD0")
    lines += ["", "2|t|Nothing.", "2|a|Here.", ""]
    return "\n".join(lines)


def make_ruler_pipeline() -> Language:
    nlp = spacy.blank("en", config={"nlp": {"tokenizer": {"@tokenizers": "spacy_fastbioner.BioTokenizer.v1"}}})
    ruler = nlp.add_pipe("entity_ruler")
    ruler.add_patterns([{"label": label, "pattern": text} for text, label in PATTERNS])  # type: ignore[attr-defined]
    return nlp


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("raw") / "corpus.txt"
    path.write_text(pubtator(), encoding="utf8")
    return path


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("ruler") / "model"
    make_ruler_pipeline().to_disk(path)
    return path


def test_evaluate_raw_scores_exact_character_spans(data: Path) -> None:
    scores = evaluate_raw(make_ruler_pipeline(), read_pubtator(data), batch_size=1)
    assert (scores["n_docs"], scores["n_gold"], scores["n_pred"]) == (2, 6, 4)
    assert scores["ents_p"] == pytest.approx(2 / 4)
    assert scores["ents_r"] == pytest.approx(2 / 6)
    assert scores["ents_f"] == pytest.approx(0.4)
    assert scores["ents_per_type"] == {
        "Chemical": {"p": 1.0, "r": pytest.approx(1 / 3), "f": pytest.approx(0.5)},
        "Disease": {"p": pytest.approx(1 / 3), "r": pytest.approx(1 / 3), "f": pytest.approx(1 / 3)},
    }
    assert scores["n_unreachable"] == 1
    # Five reachable mentions, of which two overlap: a perfect tagger finds four.
    assert scores["max_reachable_r"] == pytest.approx(4 / 6)
    json.dumps(scores)


def test_unreachable_agrees_with_boundary_study(data: Path) -> None:
    nlp = make_ruler_pipeline()
    docs = read_pubtator(data)
    study = boundary_study([(d.text, [(s, e) for s, e, _, _ in d.mentions]) for d in docs], nlp.make_doc)
    assert study["examples"] == [("colitis", ["Proctocolitis"])]
    assert evaluate_raw(nlp, docs)["n_unreachable"] == study["cut"] == 1


def test_evaluate_raw_without_gold_or_predictions() -> None:
    nlp = spacy.blank("en")
    scores = evaluate_raw(nlp, [], batch_size=4)
    assert scores["ents_f"] == scores["max_reachable_r"] == 0.0 and scores["ents_per_type"] == {}
    assert scores["n_docs"] == scores["n_gold"] == scores["n_unreachable"] == 0


@pytest.mark.parametrize(
    "spans,expected",
    [([], 0), ([(0, 5)], 1), ([(0, 5), (0, 5)], 1), ([(0, 5), (5, 9)], 2), ([(0, 9), (0, 2), (3, 9)], 2)],
)
def test_max_disjoint(spans: List[Tuple[int, int]], expected: int) -> None:
    assert _max_disjoint(spans) == expected


def test_token_level_moves_gold_to_token_boundaries(data: Path) -> None:
    scores = evaluate_token_level(make_ruler_pipeline(), data, batch_size=2)
    # "colitis" becomes "Proctocolitis"; of the overlapping pair the longest is kept.
    assert (scores["n_docs"], scores["n_gold"], scores["n_misaligned"], scores["n_overlapping"]) == (2, 5, 1, 1)
    assert scores["ents_p"] == pytest.approx(2 / 4)
    assert scores["ents_r"] == pytest.approx(2 / 5)
    assert set(scores["ents_per_type"]) == {"Chemical", "Disease"}


def invoke(*args: str) -> Tuple[int, str]:
    """Run the command in-process; RETURNS the exit code and the output
    with wasabi's line wrapping undone."""
    result = CliRunner().invoke(app, ["fastbioner", "evaluate-raw", *args])
    return result.exit_code, " ".join(result.output.split())


def test_cli_writes_spacy_evaluate_shaped_json(tmp_path: Path, data: Path, model_dir: Path) -> None:
    output = tmp_path / "metrics" / "raw.json"
    code, out = invoke(str(model_dir), str(data), "--output", str(output), "--compare", "--batch-size", "1")
    assert code == 0, out
    scores = json.loads(output.read_text(encoding="utf8"))
    for key in ("ents_p", "ents_r", "ents_f", "ents_per_type", "n_docs", "n_gold", "n_unreachable"):
        assert key in scores
    assert scores["ents_f"] == pytest.approx(0.4)
    assert scores["token_level"]["ents_r"] == pytest.approx(2 / 5)
    assert "token level" in out and "40.00" in out


def test_cli_type_map_drops_and_renames(tmp_path: Path, data: Path, model_dir: Path) -> None:
    output = tmp_path / "raw.json"
    code, out = invoke(str(model_dir), str(data), "-o", str(output), "--type-map", "Chemical=")
    assert code == 0, out
    scores = json.loads(output.read_text(encoding="utf8"))
    assert scores["n_gold"] == 3 and "token_level" not in scores


@pytest.mark.parametrize(
    "args,message",
    [
        (["--type-map", "Chemical"], "Invalid --type-map item 'Chemical'"),
        (["--batch-size", "0"], "Invalid --batch-size 0"),
    ],
)
def test_cli_refuses_bad_options(data: Path, model_dir: Path, args: List[str], message: str) -> None:
    code, out = invoke(str(model_dir), str(data), *args)
    assert code == 1 and message in out


def test_cli_reports_corpus_errors_with_their_place(tmp_path: Path, model_dir: Path) -> None:
    bad = tmp_path / "bad.txt"
    bad.write_text("1|t|Title only\n1\t0\t5\tTitle\tDisease\n", encoding="utf8")
    code, out = invoke(str(model_dir), str(bad))
    assert code == 1 and "Cannot read the evaluation data" in out and f"{bad}:2:" in out
    code, out = invoke(str(model_dir), str(tmp_path / "missing.txt"))
    assert code == 1 and "file not found; expected a PubTator file" in out


def test_cli_refuses_a_missing_pipeline(tmp_path: Path, data: Path) -> None:
    code, out = invoke(str(tmp_path / "no-model"), str(data))
    assert code == 1 and "Cannot load the pipeline" in out
