"""Tests for spacy_fastbioner.encoder.adapt (`spacy fastbioner adapt-encoder`) on a
tiny BERT with no MLM head, offline."""

import json
import shutil
from pathlib import Path

import pytest
import torch
from helpers import make_cased_tiny_bert, make_tiny_bert, synthetic_sentences
from safetensors.torch import load_file
from spacy.cli._util import app
from typer.testing import CliRunner

import spacy_fastbioner.cli  # noqa: F401  (registers `spacy fastbioner`)
from spacy_fastbioner.encoder.adapt import (
    REPORT_FILE,
    AdaptSettings,
    _masked_only_loss,
    adapt_encoder,
    read_documents,
    wordpieces_per_word,
)

SETTINGS = AdaptSettings(
    max_steps=4,
    batch_size=4,
    max_length=24,
    learn_rate=1e-3,
    warmup_steps=1,
    head_warmup_steps=1,
    heldout_docs=4,
    eval_steps=2,
    save_steps=2,
    logging_steps=1,
    seed=7,
)


@pytest.fixture(scope="module")
def text_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("adapt") / "abstracts.txt"
    docs = [" ".join(words) for words, _ in synthetic_sentences(60, seed=1)]
    path.write_text("\n".join(docs) + "\n\n", encoding="utf8")
    return path


def weights(folder: Path) -> dict:
    return load_file(str(folder / "model.safetensors"))


def test_adapted_folder_loads_as_an_encoder_and_reports_perplexity(tiny_bert, text_file, tmp_path):
    from transformers import AutoModel, AutoTokenizer

    out = tmp_path / "adapted"
    report = adapt_encoder(tiny_bert, out, [text_file], settings=SETTINGS, progress_bar=False)
    assert report["complete"] and report["steps"] == SETTINGS.max_steps
    ppl = report["heldout_perplexity"]
    assert ppl["fresh_head"] is not None and ppl["head_warmed_up"] is not None
    assert ppl["final"] < ppl["fresh_head"]
    assert json.loads((out / REPORT_FILE).read_text(encoding="utf8"))["steps"] == SETTINGS.max_steps
    # What a teacher's TransformerModel.v3 does with `name`: the encoder without the head.
    encoder = AutoModel.from_pretrained(str(out))
    assert AutoTokenizer.from_pretrained(str(out)).vocab_size == encoder.config.vocab_size
    original = AutoModel.from_pretrained(str(tiny_bert))
    moved = [
        name for name, value in encoder.state_dict().items() if not torch.equal(value, original.state_dict()[name])
    ]
    assert any(name.startswith("encoder.layer") for name in moved)


def test_resume_gives_the_state_of_an_uninterrupted_run(tiny_bert, text_file, tmp_path):
    straight = tmp_path / "straight"
    adapt_encoder(tiny_bert, straight, [text_file], settings=SETTINGS, progress_bar=False)
    # An interrupted run: killed after its step-2 checkpoint, then run again.
    resumed = tmp_path / "resumed"
    adapt_encoder(tiny_bert, resumed, [text_file], settings=SETTINGS, progress_bar=False)
    shutil.rmtree(resumed / "checkpoints" / "checkpoint-4")
    (resumed / "model.safetensors").unlink()
    report = adapt_encoder(tiny_bert, resumed, [text_file], settings=SETTINGS, progress_bar=False)
    assert report["steps"] == SETTINGS.max_steps
    a, b = weights(straight), weights(resumed)
    assert a.keys() == b.keys()
    for name in a:
        torch.testing.assert_close(a[name], b[name], rtol=0, atol=1e-6, msg=name)
    # ... and it did start again from step 2, not from scratch.
    log = [json.loads(line) for line in (resumed / "adapt_log.jsonl").read_text(encoding="utf8").splitlines()]
    assert [r["step"] for r in log if "train_runtime" in r] == [4, 4]


def test_stop_at_step_stops_there_and_resumes_to_the_uninterrupted_state(tiny_bert, text_file, tmp_path):
    straight = tmp_path / "straight"
    adapt_encoder(tiny_bert, straight, [text_file], settings=SETTINGS, progress_bar=False)
    resumed = tmp_path / "resumed"
    part = adapt_encoder(tiny_bert, resumed, [text_file], settings=SETTINGS, stop_at_step=2, progress_bar=False)
    assert part["steps"] == 2 and not part["complete"]
    assert (resumed / "checkpoints" / "checkpoint-2").is_dir()
    report = adapt_encoder(tiny_bert, resumed, [text_file], settings=SETTINGS, progress_bar=False)
    assert report["steps"] == SETTINGS.max_steps and report["complete"]
    a, b = weights(straight), weights(resumed)
    for name in a:
        torch.testing.assert_close(a[name], b[name], rtol=0, atol=1e-6, msg=name)


def test_resume_refuses_other_settings(tiny_bert, text_file, tmp_path):
    out = tmp_path / "adapted"
    adapt_encoder(tiny_bert, out, [text_file], settings=SETTINGS, progress_bar=False)
    other = AdaptSettings(**{**SETTINGS.__dict__, "learn_rate": 5e-4})
    with pytest.raises(ValueError, match=r"settings.json: .*other settings \(learn_rate\)"):
        adapt_encoder(tiny_bert, out, [text_file], settings=other, progress_bar=False)


def test_masked_only_loss_equals_the_full_head(tiny_bert):
    from transformers import AutoModelForMaskedLM

    model = AutoModelForMaskedLM.from_pretrained(str(tiny_bert)).eval()
    torch.manual_seed(0)
    input_ids = torch.randint(5, model.config.vocab_size, (3, 10))
    labels = torch.full_like(input_ids, -100)
    labels[:, ::3] = input_ids[:, ::3]
    batch = {"input_ids": input_ids, "attention_mask": torch.ones_like(input_ids), "labels": labels}
    with torch.no_grad():
        full = model(**batch).loss
        ours = _masked_only_loss(model, batch)
    torch.testing.assert_close(ours, full)
    assert "labels" in batch  # the caller's batch is left as it was


def test_read_documents_refuses_test_text_and_empty_files(tmp_path):
    test_file = tmp_path / "test.txt"
    test_file.write_text("Aspirin for cancer.\n", encoding="utf8")
    with pytest.raises(ValueError, match=r"test.txt: .*never read test text"):
        read_documents([test_file])
    assert read_documents([test_file], allow_test=True) == ["Aspirin for cancer."]
    empty = tmp_path / "abstracts.txt"
    empty.write_text("\n  \n", encoding="utf8")
    with pytest.raises(ValueError, match="No text in .*abstracts.txt"):
        read_documents([empty])


@pytest.mark.parametrize("cased", [False, True], ids=["uncased", "cased"])
def test_wordpieces_per_word(tmp_path, cased):
    make = make_cased_tiny_bert if cased else make_tiny_bert
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(make(tmp_path / "bert")))
    docs = ["cancer cancer xq", "aspirin"]
    stats = wordpieces_per_word(tokenizer, docs)
    expected = sum(len(tokenizer(w, add_special_tokens=False)["input_ids"]) for d in docs for w in d.split())
    assert stats["words"] == 4 and stats["wordpieces"] == expected
    assert stats["share_of_words_split"] == pytest.approx(1 / 4)  # "xq" alone is cut: x ##q
    assert stats["costliest_words"][0]["word"] == "xq"
    # Punctuation is cut off words as the tokenizer cuts it, not glued to them: "cancer," is two words.
    glued = wordpieces_per_word(tokenizer, ["cancer, aspirin."])
    assert glued["words"] == 4 and glued["share_of_words_split"] == 0


def test_cli_runs_and_fails_clearly(tiny_bert, text_file, tmp_path):
    runner = CliRunner()
    out = tmp_path / "cli"
    args = ["fastbioner", "adapt-encoder", str(tiny_bert), str(out), "--text", str(text_file)]
    small = ["--max-steps", "2", "-b", "4", "--max-length", "24", "--heldout-docs", "4", "--head-warmup-steps", "1"]
    result = runner.invoke(app, args + small + ["--eval-steps", "1", "--save-steps", "1"])
    assert result.exit_code == 0, result.output
    assert "held-out perplexity" in result.output and (out / "model.safetensors").is_file()
    bad = tmp_path / "test.tsv"
    bad.write_text("x\n", encoding="utf8")
    result = runner.invoke(
        app, ["fastbioner", "adapt-encoder", str(tiny_bert), str(tmp_path / "x"), "--text", str(bad)]
    )
    assert result.exit_code == 1 and "test or evaluation split" in result.output
