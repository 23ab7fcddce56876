"""`spacy fastbioner annotate` end to end on a tiny pipeline: offsets and
confidence, every bad-input case in errors.jsonl, n_process, kill -9 and
resume, fatal errors, a 5 MB document, --html and --min-confidence."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Dict, List

import numpy
import pytest
import spacy
from helpers import synthetic_sentences
from spacy.cli._util import app
from spacy.language import Language
from typer.testing import CliRunner

import spacy_fastbioner.cli  # noqa: F401  (registers the commands)
from spacy_fastbioner.annotate import AnnotateError, annotate
from spacy_fastbioner.annotate.shards import MANIFEST, SHARDS_DIR

bioc = pytest.importorskip("bioc")
from bioc import biocxml  # noqa: E402  (after the skip: bioc is optional)

REPO = Path(__file__).parent.parent


def texts(n: int, seed: int = 5) -> List[str]:
    """Sentences joined into small abstracts of 1-3 sentences."""
    sents = [" ".join(words) + " ." for words, _ in synthetic_sentences(3 * n, seed=seed)]
    return [" ".join(sents[3 * i : 3 * i + 1 + i % 3]) for i in range(n)]


def read_jsonl(path: Path) -> List[Dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf8").splitlines()]


def outputs(folder: Path) -> Dict[str, bytes]:
    """Every output file of a run (shards, errors, summary), by name."""
    files = {p.name: p.read_bytes() for p in (folder / SHARDS_DIR).iterdir()}
    files.update({name: (folder / name).read_bytes() for name in ("errors.jsonl", "summary.json")})
    return files


def all_records(folder: Path) -> List[Dict]:
    summary = json.loads((folder / "summary.json").read_text())
    return [r for name in summary["outputs"]["jsonl"] for r in read_jsonl(folder / SHARDS_DIR / name)]


@pytest.fixture(scope="module")
def nlp(raw_text_model: Path):
    return spacy.load(raw_text_model)


def test_offsets_and_confidence_match_the_pipeline(tmp_path: Path, raw_text_model: Path, nlp) -> None:
    docs = texts(12)
    (tmp_path / "in.jsonl").write_text(
        "\n".join(json.dumps({"pmid": i, "title": t.split(" . ")[0], "abstract": t}) for i, t in enumerate(docs)),
        encoding="utf8",
    )
    summary = annotate(
        str(raw_text_model),
        [tmp_path / "in.jsonl"],
        tmp_path / "out",
        id_field="pmid",
        text_fields=("title", "abstract"),
        shard_size=5,
        batch_size=4,
        quiet=True,
    )
    assert (summary["n_read"], summary["n_written"], summary["n_errors"], summary["n_shards"]) == (12, 12, 0, 3)
    records = all_records(tmp_path / "out")
    assert [r["id"] for r in records] == [str(i) for i in range(12)]
    ner = nlp.get_pipe("fastbioner_ner")
    index = {tag: i for i, tag in enumerate(ner.tags)}
    n_checked = 0
    for record, text in zip(records, docs):
        full = f"{text.split(' . ')[0]} {text}"
        doc = nlp(full)  # raw text through the pipeline's own tokenizer and sentences, as evaluate-raw does
        assert [(e["start"], e["end"], e["label"]) for e in record["entities"]] == [
            (e.start_char, e.end_char, e.label_) for e in doc.ents
        ]
        assert all(full[e["start"] : e["end"]] == e["text"] for e in record["entities"])
        probs = ner.predict_proba([_upstream(nlp, full)])[0]
        for ent, out in zip(doc.ents, record["entities"]):
            tags = [index[f"B-{ent.label_}"]] + [index[f"I-{ent.label_}"]] * (len(ent) - 1)
            expected = float(numpy.mean(probs[numpy.arange(ent.start, ent.end), tags]))
            assert out["confidence"] == pytest.approx(expected, abs=1e-4)
            n_checked += 1
    assert n_checked > 10


def _upstream(nlp, text: str):
    """A doc annotated by every component before the NER."""
    doc = nlp.make_doc(text)
    for name, proc in nlp.pipeline:
        if name == "fastbioner_ner":
            break
        doc = proc(doc)
    return doc


def test_bioc_passages_keep_their_offsets(tmp_path: Path, raw_text_model: Path, nlp) -> None:
    title, abstract = texts(2)
    collection = bioc.BioCCollection()
    document = bioc.BioCDocument()
    document.id = "P1"
    for offset, text in ((100, title), (100 + len(title) + 5, abstract)):
        passage = bioc.BioCPassage()
        passage.offset, passage.text = offset, text
        document.add_passage(passage)
    collection.add_document(document)
    (tmp_path / "in.xml").write_text(biocxml.dumps(collection), encoding="utf8")
    annotate(str(raw_text_model), [tmp_path / "in.xml"], tmp_path / "out", formats=("jsonl", "bioc"), quiet=True)
    (record,) = all_records(tmp_path / "out")
    expected = [(e.start_char + 100, e.end_char + 100, e.label_) for e in nlp(title).ents]
    expected += [(e.start_char + 105 + len(title), e.end_char + 105 + len(title), e.label_) for e in nlp(abstract).ents]
    assert [(e["start"], e["end"], e["label"]) for e in record["entities"]] == expected
    out = biocxml.loads((tmp_path / "out" / SHARDS_DIR / "00000-000000.bioc.xml").read_text(encoding="utf8"))
    anns = [a for p in out.documents[0].passages for a in p.annotations]
    assert [(a.total_span.offset, a.total_span.end, a.infons["type"]) for a in anns] == expected


def bad_inputs(folder: Path) -> List[Path]:
    """One file per bad-input case, each next to good documents."""
    good = texts(2)
    (folder / "broken.jsonl").write_text(
        json.dumps({"id": "a", "text": good[0]})
        + '\n{"id": "b", "text": \n'
        + json.dumps({"id": "c", "text": good[1]})
        + "\n",
        encoding="utf8",
    )
    start = len(good[0]) + 1
    (folder / "offsets.pubtator").write_text(
        f"1|t|{good[0]}\n1|a|{good[1]}\n1\t0\t3\t{good[0][:3]}\tDisease\n\n"
        f"2|t|{good[0]}\n2|a|{good[1]}\n2\t{start}\t{start + 999}\tx\tDisease\n\n",
        encoding="utf8",
    )
    collection = bioc.BioCCollection()
    for i, text in enumerate(good):
        document = bioc.BioCDocument()
        document.id = f"X{i}"
        passage = bioc.BioCPassage()
        passage.offset, passage.text = 0, text
        document.add_passage(passage)
        collection.add_document(document)
    xml = biocxml.dumps(collection)
    (folder / "invalid.xml").write_text(xml.replace("<text>", "<text><b>", 1), encoding="utf8")
    (folder / "bytes.txt").write_bytes(good[0].encode() + b"\n\xff\xfe not UTF-8\n" + good[1].encode() + b"\n")
    (folder / "empty.txt").write_text(f"{good[0]}\n   \n{good[1]}\n", encoding="utf8")
    return [folder / name for name in ("broken.jsonl", "offsets.pubtator", "invalid.xml", "bytes.txt", "empty.txt")]


def test_bad_input_goes_to_errors_and_nothing_is_lost(tmp_path: Path, raw_text_model: Path) -> None:
    files = bad_inputs(tmp_path)
    summary = annotate(str(raw_text_model), files, tmp_path / "out", shard_size=2, quiet=True)
    errors = read_jsonl(tmp_path / "out" / "errors.jsonl")
    found = {(Path(e["file"]).name, e["line"], e["id"]): e["reason"] for e in errors}
    assert set(found) == {
        ("broken.jsonl", 2, None),
        ("offsets.pubtator", 5, "2"),
        ("invalid.xml", None, "X0"),
        ("bytes.txt", 2, "2"),
        ("empty.txt", 2, "2"),
    }
    assert "broken JSON" in found[("broken.jsonl", 2, None)]
    assert "outside the text" in found[("offsets.pubtator", 5, "2")]
    assert "invalid XML document" in found[("invalid.xml", None, "X0")]
    assert "not UTF-8" in found[("bytes.txt", 2, "2")] and found[("empty.txt", 2, "2")] == "empty text"
    assert all(e["byte"] > 0 for e in errors)
    assert (summary["n_read"], summary["n_written"], summary["n_errors"]) == (13, 8, 5)
    lines = [json.loads(line) for line in (tmp_path / "out" / MANIFEST).read_text().splitlines()[1:]]
    assert all(e["n_read"] == e["n_written"] + e["n_errors"] for e in lines)
    assert sum(e["n_read"] for e in lines) == 13 and len(all_records(tmp_path / "out")) == 8


def test_two_processes_give_the_same_output(tmp_path: Path, raw_text_model: Path) -> None:
    (tmp_path / "in.txt").write_text("\n".join(texts(30)) + "\n", encoding="utf8")
    for n in (1, 2):
        annotate(
            str(raw_text_model),
            [tmp_path / "in.txt"],
            tmp_path / f"out{n}",
            shard_size=8,
            batch_size=3,
            n_process=n,
            formats=("jsonl", "pubtator", "bioc"),
            quiet=True,
        )
    assert outputs(tmp_path / "out1") == outputs(tmp_path / "out2")


def cli(*args: str) -> List[str]:
    return [sys.executable, "-m", "spacy", "fastbioner", "annotate", *args]


def env() -> Dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}


@pytest.mark.parametrize("isolate", [False, True])
def test_kill_and_resume_equals_an_uninterrupted_run(tmp_path: Path, raw_text_model: Path, isolate: bool) -> None:
    (tmp_path / "in.txt").write_text("\n".join(texts(100, seed=9)) + "\n\n", encoding="utf8")
    args = [str(raw_text_model), str(tmp_path / "in.txt"), "--shard-size", "4", "--quiet", "-f", "jsonl,pubtator"]
    args += ["--isolate-shards"] if isolate else []
    annotate(
        str(raw_text_model),
        [tmp_path / "in.txt"],
        tmp_path / "whole",
        shard_size=4,
        formats=("jsonl", "pubtator"),
        quiet=True,
    )
    out = tmp_path / "killed"
    proc = subprocess.Popen(cli(*args, "-o", str(out)), env=env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and proc.poll() is None:
        manifest = out / MANIFEST
        if manifest.is_file() and manifest.read_bytes().count(b"\n") >= 4:  # header + 3 shards
            break
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    assert proc.wait(timeout=60) == -signal.SIGKILL, "the run ended before it could be killed"
    n_done = (out / MANIFEST).read_bytes().count(b"\n") - 1
    assert not (out / "summary.json").exists() and 3 <= n_done < 26
    # What a kill in the middle of writing leaves: a torn manifest line, a temporary file.
    with (out / MANIFEST).open("ab") as file_:
        file_.write(b'{"id": "00000-0000')
    (out / SHARDS_DIR / "00000-000096.jsonl.tmp").write_bytes(b"partial")
    # The resume through the CLI, in this process: the kill needed a process of its own, the resume does not.
    code, text = invoke(*args, "-o", str(out), "--resume")
    assert code == 0, text
    assert outputs(out) == outputs(tmp_path / "whole")
    assert not list((out / SHARDS_DIR).glob("*.tmp"))
    summary = json.loads((out / "summary.json").read_text())
    assert (summary["n_read"], summary["n_written"] + summary["n_errors"]) == (101, 101)
    # A third run finds everything done and changes nothing (through the API: the CLI was run above).
    annotate(
        str(raw_text_model),
        [tmp_path / "in.txt"],
        out,
        shard_size=4,
        formats=("jsonl", "pubtator"),
        quiet=True,
        isolate_shards=isolate,
    )
    assert outputs(out) == outputs(tmp_path / "whole")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="isolated shards fork (Linux)")
def test_isolated_shards_equal_one_process(tmp_path: Path, raw_text_model: Path) -> None:
    """Each shard annotated in a process forked for it gives the in-process
    output, reports its progress, and the work happens in the children."""
    from spacy_fastbioner.benchmark.scaling import _children

    (tmp_path / "in.txt").write_text("\n".join(texts(40, seed=3)) + "\n\n", encoding="utf8")
    kwargs = {"shard_size": 8, "formats": ("jsonl", "pubtator"), "quiet": True}
    annotate(str(raw_text_model), [tmp_path / "in.txt"], tmp_path / "one", **kwargs)
    seen: List[tuple] = []

    def monitor(done: int, total: int, words: int) -> None:
        seen.append((done, total, words, len(_children(os.getpid()))))

    summary = annotate(
        str(raw_text_model),
        [tmp_path / "in.txt"],
        tmp_path / "isolated",
        isolate_shards=True,
        monitor=monitor,
        **kwargs,
    )
    assert outputs(tmp_path / "isolated") == outputs(tmp_path / "one")
    assert summary["n_shards"] == 6 and summary["n_read"] == 41
    assert seen[-1][:2] == (41, 41) and seen[-1][2] == summary["n_words"] > 0
    assert all(n_children == 1 for done, _, words, n_children in seen if words)
    with pytest.raises(AnnotateError, match="local backend with one process"):
        annotate(str(raw_text_model), [tmp_path / "in.txt"], tmp_path / "x", isolate_shards=True, n_process=2)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="isolated shards fork (Linux)")
def test_an_isolated_shard_that_fails_stops_the_run_with_its_reason(raw_text_model: Path) -> None:
    from spacy_fastbioner.annotate import isolated

    def boom(*args, **kwargs):
        raise ValueError("boom")

    def die(*args, **kwargs):
        os._exit(3)

    with pytest.raises(RuntimeError, match="shard s1 failed: ValueError: boom"):
        isolated.run_in_child(boom, None, [], None, shard_id="s1")
    with pytest.raises(RuntimeError, match="shard s2 failed: exit code 3"):
        isolated.run_in_child(die, None, [], None, shard_id="s2")


def test_a_changed_shard_file_is_redone(tmp_path: Path, raw_text_model: Path) -> None:
    (tmp_path / "in.txt").write_text("\n".join(texts(10)) + "\n", encoding="utf8")

    def run() -> None:
        annotate(str(raw_text_model), [tmp_path / "in.txt"], tmp_path / "out", shard_size=4, quiet=True)

    run()
    before = outputs(tmp_path / "out")
    (tmp_path / "out" / SHARDS_DIR / "00000-000001.jsonl").write_text("damaged\n", encoding="utf8")
    run()
    assert outputs(tmp_path / "out") == before


def invoke(*args: str):
    result = CliRunner().invoke(app, ["fastbioner", "annotate", *args])
    return result.exit_code, " ".join(result.output.split())


def test_fatal_errors(tmp_path: Path, raw_text_model: Path, nlp) -> None:
    (tmp_path / "in.txt").write_text("\n".join(texts(3)) + "\n", encoding="utf8")
    (tmp_path / "other.txt").write_text("\n".join(texts(3, seed=1)) + "\n", encoding="utf8")
    out = str(tmp_path / "out")
    code, text = invoke(str(tmp_path / "no-model"), str(tmp_path / "in.txt"), "-o", out, "-q")
    assert code == 1 and "Cannot find the model" in text and not (tmp_path / "out").exists()
    code, text = invoke(str(raw_text_model), str(tmp_path / "in.txt"), "-o", out, "--resume", "-q")
    assert code == 1 and "holds no earlier run" in text
    code, text = invoke(str(raw_text_model), str(tmp_path / "missing*.txt"), "-o", out, "-q")
    assert code == 1 and "matches no file" in text
    code, text = invoke(str(raw_text_model), str(tmp_path / "in.txt"), "-o", out, "-q")
    assert code == 0 and "Annotated 3 of 3 documents" in text
    code, text = invoke(str(raw_text_model), str(tmp_path / "other.txt"), "-o", out, "-q")
    assert code == 1 and "holds the output of other inputs" in text
    other_model = tmp_path / "other-model"
    nlp.get_pipe("fastbioner_ner").model.get_ref("output_layer").get_param("b")[0] += 1.0
    nlp.to_disk(other_model)
    code, text = invoke(str(other_model), str(tmp_path / "in.txt"), "-o", out, "-q")
    assert code == 1 and "holds the output of another model" in text
    code, text = invoke(str(raw_text_model), str(tmp_path / "in.txt"), "-o", out, "-q", "--min-confidence", "0.5")
    assert code == 1 and "other settings" in text and "min_confidence" in text
    code, text = invoke(str(raw_text_model), str(tmp_path / "in.txt"), "-o", out, "-q", "-f", "xml")
    assert code == 1 and "Unknown output format(s) xml" in text


def test_min_confidence_and_html(tmp_path: Path, raw_text_model: Path) -> None:
    (tmp_path / "in.txt").write_text("\n".join(texts(12)) + "\n", encoding="utf8")
    annotate(str(raw_text_model), [tmp_path / "in.txt"], tmp_path / "all", shard_size=5, quiet=True, html=7)
    annotate(
        str(raw_text_model), [tmp_path / "in.txt"], tmp_path / "sure", shard_size=5, quiet=True, min_confidence=0.9
    )
    everything = [e for r in all_records(tmp_path / "all") for e in r["entities"]]
    sure = [e for r in all_records(tmp_path / "sure") for e in r["entities"]]
    assert sure == [e for e in everything if e["confidence"] >= 0.9]
    assert 0 < len(sure) < len(everything)
    pages = sorted((tmp_path / "all" / "html").glob("*.html"))
    assert len(pages) == 8 and pages[-1].name == "index.html"
    assert "7 annotated documents" in pages[-1].read_text(encoding="utf8")


def test_a_5mb_document_is_annotated(tmp_path: Path) -> None:
    """The length limit is lifted (spaCy's default is 1,000,000 characters).
    A rule-based pipeline with the BioTokenizer keeps this fast; the
    transformer's handling of long texts is tested in test_long_docs.py."""
    nlp = spacy.blank("en", config={"nlp": {"tokenizer": {"@tokenizers": "spacy_fastbioner.BioTokenizer.v1"}}})
    nlp.add_pipe("entity_ruler").add_patterns([{"label": "Chemical", "pattern": "aspirin"}])  # type: ignore[attr-defined]
    nlp.to_disk(tmp_path / "ruler")
    unit = "Patients were given aspirin for pain. "
    text = unit * (5_000_000 // len(unit) + 1)
    (tmp_path / "in.jsonl").write_text(json.dumps({"id": "big", "text": text}) + "\n", encoding="utf8")
    summary = annotate(str(tmp_path / "ruler"), [tmp_path / "in.jsonl"], tmp_path / "out", quiet=True)
    assert len(text) > 5_000_000 and summary["n_written"] == 1 and summary["n_errors"] == 0
    (record,) = all_records(tmp_path / "out")
    assert len(record["entities"]) == text.count("aspirin")
    assert record["entities"][-1]["start"] == text.rindex("aspirin") and record["entities"][-1]["confidence"] is None


# Two runs that need a fresh process, in one (each start of Python with torch and spaCy costs
# seconds): first the parent uses the fast tokenizer's thread pool (a run with one process) before
# it forks two children, where the tokenizers library would warn in each child unless the run
# configures its parallelism; then it runs the pipeline with two torch threads and annotates with
# isolated shards, whose forked children must not wait for the parent's OpenMP threads (they run
# one thread unless told otherwise).
FRESH_PROCESS_SCRIPT = """
import sys, spacy, torch
from spacy_fastbioner.annotate import annotate
model, data, data_isolated, out = sys.argv[1:]
torch.set_num_threads(1)
annotate(model, [data], out + '1', quiet=True, batch_size=16)
annotate(model, [data], out + '2', quiet=True, n_process=2, batch_size=8)
print(MARK, file=sys.stderr, flush=True)
torch.set_num_threads(2)
nlp = spacy.load(model)
list(nlp.pipe(open(data_isolated).read().splitlines() * 4))
print(annotate(model, [data_isolated], out + '3', quiet=True, shard_size=4, isolate_shards=True)['n_written'])
"""
MARK = "-- the isolated shards after two threads --"


@pytest.fixture(scope="module")
def fresh_process(tmp_path_factory, raw_text_model: Path) -> Dict:
    """FRESH_PROCESS_SCRIPT's run, and its folder."""
    folder = tmp_path_factory.mktemp("fresh_process")
    (folder / "in.txt").write_text("\n".join(texts(40)) + "\n", encoding="utf8")
    (folder / "isolated.txt").write_text("\n".join(texts(12, seed=4)) + "\n", encoding="utf8")
    environ = {**env(), "OMP_NUM_THREADS": "2"}
    environ.pop("TOKENIZERS_PARALLELISM", None)
    script = FRESH_PROCESS_SCRIPT.replace("MARK", repr(MARK))
    args = [sys.executable, "-c", script, str(raw_text_model)]
    args += [str(folder / "in.txt"), str(folder / "isolated.txt"), str(folder / "out")]
    result = subprocess.run(args, env=environ, capture_output=True, text=True, timeout=600)
    return {"folder": folder, "result": result}


def test_no_tokenizers_fork_warning(fresh_process: Dict) -> None:
    """The parent has used the fast tokenizer's thread pool (a run with one
    process) before it forks two children: the tokenizers library would warn
    in each child unless the run configures its parallelism."""
    result, folder = fresh_process["result"], fresh_process["folder"]
    assert MARK in result.stderr, result.stderr[-3000:]
    before = result.stderr.split(MARK)[0]
    assert "huggingface/tokenizers" not in before + result.stdout
    assert outputs(folder / "out1") == outputs(folder / "out2")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="isolated shards fork (Linux)")
def test_isolated_shards_after_the_parent_ran_two_threads(fresh_process: Dict) -> None:
    """A process that has run the pipeline with two torch threads, then
    annotates with isolated shards: its forked children must not wait for the
    parent's OpenMP threads (they run one thread unless told otherwise)."""
    result = fresh_process["result"]
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.split()[-1] == "12"


def test_api_refuses_bad_settings(tmp_path: Path, raw_text_model: Path) -> None:
    (tmp_path / "in.txt").write_text("text\n", encoding="utf8")
    with pytest.raises(AnnotateError, match="Unknown backend"):
        annotate(str(raw_text_model), [tmp_path / "in.txt"], tmp_path / "out", backend="spark")
    with pytest.raises(AnnotateError, match="expected a number in"):
        annotate(str(raw_text_model), [tmp_path / "in.txt"], tmp_path / "out", min_confidence=2.0)
    with pytest.raises(AnnotateError, match="Invalid max batch items: 0"):
        annotate(str(raw_text_model), [tmp_path / "in.txt"], tmp_path / "out", max_batch_items=0)


def test_max_batch_items_reaches_the_transformer(raw_text_model: Path) -> None:
    from spacy_fastbioner.annotate.local import load_pipeline
    from spacy_fastbioner.encoder.transformer import find_transformer

    default = find_transformer(load_pipeline(str(raw_text_model))).cfg["max_batch_items"]
    assert find_transformer(load_pipeline(str(raw_text_model), default + 7)).cfg["max_batch_items"] == default + 7


def test_max_batch_items_leaves_a_pipeline_without_transformer_alone(tmp_path: Path) -> None:
    """One --max-batch-items serves every model of annotate-benchmark,
    the CNN baseline too."""
    nlp = spacy.blank("en")
    nlp.add_pipe("entity_ruler").add_patterns([{"label": "Chemical", "pattern": "aspirin"}])  # type: ignore[attr-defined]
    nlp.to_disk(tmp_path / "ruler")
    (tmp_path / "in.txt").write_text("They took aspirin.\n", encoding="utf8")
    summary = annotate(str(tmp_path / "ruler"), [tmp_path / "in.txt"], tmp_path / "out", quiet=True, max_batch_items=64)
    assert summary["n_written"] == 1
    assert [e["text"] for r in all_records(tmp_path / "out") for e in r["entities"]] == ["aspirin"]


def test_abbreviations_option_adds_the_consistency_component(tmp_path: Path) -> None:
    """--abbreviations: a short form's mentions take its long form's entity."""
    nlp = spacy.blank("en", config={"nlp": {"tokenizer": {"@tokenizers": "spacy_fastbioner.BioTokenizer.v1"}}})
    ruler = nlp.add_pipe("entity_ruler")
    ruler.add_patterns([{"label": "Disease", "pattern": "adenomatous polyposis coli"}])  # type: ignore[attr-defined]
    nlp.to_disk(tmp_path / "ruler")
    text = "Familial adenomatous polyposis coli (APC) is inherited. APC patients were studied."
    (tmp_path / "in.txt").write_text(text + "\n", encoding="utf8")
    found = {}
    for flag in (True, False):
        out = tmp_path / f"out-{flag}"
        annotate(str(tmp_path / "ruler"), [tmp_path / "in.txt"], out, quiet=True, abbreviations=flag)
        found[flag] = [e["text"] for r in all_records(out) for e in r["entities"]]
    assert found == {True: ["adenomatous polyposis coli", "APC", "APC"], False: ["adenomatous polyposis coli"]}


def test_identifiers_reach_every_output(tmp_path: Path) -> None:
    """A pipeline with `fastbioner_linker`: JSONL `id`/`id_score`, PubTator's identifier column,
    BioC's `identifier` infon and the --html pages, the same with two processes."""
    from spacy_fastbioner.kb import ConceptKB

    nlp = spacy.blank("en", config={"nlp": {"tokenizer": {"@tokenizers": "spacy_fastbioner.BioTokenizer.v1"}}})
    ruler = nlp.add_pipe("entity_ruler")
    patterns = [("Disease", "breast cancer"), ("Disease", "zqxv syndrome"), ("Chemical", "Lithium")]
    ruler.add_patterns([{"label": label, "pattern": text} for label, text in patterns])  # type: ignore[attr-defined]
    kb = ConceptKB()
    kb.add_alias("breast cancer", ["D001943"], [1], type_="Disease")
    kb.add_alias("lithium", ["D008094"], [1], type_="Chemical")
    nlp.add_pipe("fastbioner_linker").set_kb(kb)  # type: ignore[attr-defined]
    nlp.to_disk(tmp_path / "linked")
    lines = [json.dumps({"id": str(k), "text": f"Lithium and breast cancer, zqxv syndrome {k}."}) for k in range(6)]
    (tmp_path / "in.jsonl").write_text("\n".join(lines) + "\n", encoding="utf8")
    runs = {}
    for n_process in (1, 2):
        out = tmp_path / f"out{n_process}"
        fmts = ["jsonl", "pubtator", "bioc"]
        annotate(str(tmp_path / "linked"), [tmp_path / "in.jsonl"], out, formats=fmts, n_process=n_process, html=2)
        runs[n_process] = outputs(out)
        records = all_records(out)
        assert [(e["text"], e["id"]) for e in records[0]["entities"]] == [
            ("Lithium", "D008094"),
            ("breast cancer", "D001943"),
            ("zqxv syndrome", None),
        ]
        assert records[0]["entities"][0]["id_score"] > 0.5
    assert runs[1] == runs[2]
    pubtator = b"".join(v for k, v in runs[1].items() if k.endswith(".pubtator")).decode("utf8")
    assert "0\t12\t25\tbreast cancer\tDisease\tD001943" in pubtator.splitlines()
    assert "0\t27\t40\tzqxv syndrome\tDisease\t-1" in pubtator.splitlines()
    bioc_xml = b"".join(v for k, v in runs[1].items() if k.endswith(".bioc.xml")).decode("utf8")
    assert '<infon key="identifier">D001943</infon>' in bioc_xml
    page = (tmp_path / "out1" / "html" / "00000-000000-0000-0.html").read_text(encoding="utf8")
    assert "meshb.nlm.nih.gov/record/ui?ui=D008094" in page


@Language.component("fail_on_zqxv")
def fail_on_zqxv(doc):
    """A component that raises on one kind of text, as a pipeline can."""
    if "zqxv" in doc.text:
        raise ValueError("this component cannot take zqxv")
    return doc


def test_a_document_the_pipeline_fails_on_goes_to_errors(tmp_path: Path, raw_text_model: Path, nlp) -> None:
    """A component raises on one document (the tiny BERT's too-long windows
    no longer raise: they are truncated to its positions)."""
    failing = spacy.load(raw_text_model)
    failing.add_pipe("fail_on_zqxv")
    failing.to_disk(tmp_path / "model")
    raw_text_model = tmp_path / "model"
    good = texts(4)
    spelled = " ".join(["zqxv"] * 60)
    (tmp_path / "in.txt").write_text("\n".join(good[:2] + [spelled] + good[2:]) + "\n", encoding="utf8")
    summary = annotate(str(raw_text_model), [tmp_path / "in.txt"], tmp_path / "out", quiet=True, batch_size=8)
    assert (summary["n_read"], summary["n_written"], summary["n_errors"]) == (5, 4, 1)
    (error,) = read_jsonl(tmp_path / "out" / "errors.jsonl")
    assert (error["line"], error["id"]) == (3, "3") and error["reason"].startswith("the pipeline failed")
    assert [r["id"] for r in all_records(tmp_path / "out")] == ["1", "2", "4", "5"]
    whole = annotate(str(raw_text_model), [tmp_path / "in.txt"], tmp_path / "again", quiet=True, batch_size=1)
    assert outputs(tmp_path / "again") == outputs(tmp_path / "out") and whole == summary


def test_annotate_benchmark_reports(tmp_path: Path, raw_text_model: Path) -> None:
    from spacy_fastbioner.benchmark.scaling import run_scaling_benchmark

    (tmp_path / "abstracts.txt").write_text("\n".join(texts(30)) + "\n", encoding="utf8")
    results = run_scaling_benchmark(
        [("tiny", str(raw_text_model))],
        tmp_path / "abstracts.txt",
        tmp_path / "bench",
        n_docs=20,
        shard_size=10,
        batch_size=4,
        max_batch_items=256,
        settings=((1, 1, False), (2, 1, False), (1, 1, True)),
    )
    assert results["max_batch_items"] == 256
    entry = results["models"]["tiny"]
    (one, two, isolated) = entry["runs"]
    assert isolated["isolate_shards"] and not one["isolate_shards"] and isolated["n_words"] == one["n_words"]
    assert len(isolated["memory"]["50%"]["children"]) == 1  # the shard's own process
    assert one["n_docs"] == two["n_docs"] == 20 and one["n_words"] == two["n_words"] > 100
    assert entry["scaling"]["2x1"] == pytest.approx(two["words_per_second"] / one["words_per_second"], rel=1e-2)
    # PubMed's size as the README states it (about 9B words), not the module's
    # constant: a wrong constant or formula fails here.
    per_core = two["words_per_second"] / 2
    pubmed = entry["pubmed"]
    assert pubmed["core_hours"] * 3600 * per_core == pytest.approx(9e9, rel=1e-2)
    assert pubmed["cores_for_one_day"] == pytest.approx(pubmed["core_hours"] / 24, abs=0.1)
    assert set(one["memory"]) == {"10%", "50%", "100%"} and one["memory"]["100%"]["main"]["peak_mb"] > 0
    assert len(two["memory"]["10%"]["children"]) == 2  # each child process of nlp.pipe is measured
    markdown = (tmp_path / "bench" / "scaling.md").read_text(encoding="utf8")
    assert "| tiny | 2x1 |" in markdown and "| tiny | 1x1i |" in markdown and "cores to finish in 24 h" in markdown
    assert set(entry["scaling"]) == {"1x1", "2x1", "1x1i"}
    assert "max batch items 256" in markdown
    from spacy_fastbioner.benchmark.scaling import parse_settings

    assert parse_settings("1x1, 2x1,1x2,1x2i") == [(1, 1, False), (2, 1, False), (1, 2, False), (1, 2, True)]
    for bad in ("2", "0x1", "1x", "ax1", "1xi"):
        with pytest.raises(ValueError, match="PROCESSESxTHREADS"):
            parse_settings(bad)
    with pytest.raises(ValueError, match="for one process"):
        parse_settings("2x1i")
    assert json.loads((tmp_path / "bench" / "scaling.json").read_text()) == results


def test_scaling_report_without_a_one_process_run() -> None:
    """A run of isolated shards alone has no 1x1 to compare with: its ratio
    reads "–" (and there is no PubMed row); beside a 1x1 run it gets one."""
    from spacy_fastbioner.benchmark.scaling import _derived, scaling_markdown

    run = {"n_process": 1, "n_threads": 1, "isolate_shards": True, "words_per_second": 4000.0}
    run.update(docs_per_second=16.0, memory={"10%": {"main": {"peak_mb": 700.0}, "children": [{"peak_mb": 900.0}]}})
    assert _derived([run]) == {}
    base = {**run, "isolate_shards": False, "words_per_second": 3000.0}
    assert _derived([base, run])["scaling"] == {"1x1": 1.0, "1x1i": pytest.approx(4000 / 3000, rel=1e-3)}
    results = {"n_docs": 10, "data": "a.txt", "batch_size": 8, "shard_size": 5, "cpu_count": 2}
    results["models"] = {"m": {"runs": [run]}}
    markdown = scaling_markdown(results)
    assert "| m | 1x1i | 4,000 | 16.0 | – | 700 + 900 | – | – |" in markdown
