"""Domain-adaptive pretraining: continue masked-language-model training of an
encoder on in-domain raw text, resumably, and write a Hugging Face folder that a
teacher's `TransformerModel.v3` takes as its `name`.

Built on transformers' `Trainer` (checkpoints with optimizer, scheduler and RNG
state), its MLM head and `DataCollatorForWholeWordMask`. Two things are ours:
the head is projected only at masked positions (on BERT the vocabulary
projection costs about as much as a 6-layer encoder when applied to every
position), and a fresh head (checkpoints such as all-MiniLM-L6-v2 ship none) is
warmed up with the encoder frozen, so that its first large gradients do not
reach the encoder. The held-out perplexity at the end of that warm-up is the
unadapted encoder's, the fair "before" figure.
"""

import json
import math
import random
import re
import struct
import time
import zlib
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, Dict, Iterable, List, Optional, Sequence, Tuple, Union, cast

import torch
from transformers import (
    AutoModelForMaskedLM,
    AutoTokenizer,
    DataCollatorForLanguageModeling,
    DataCollatorForWholeWordMask,
    Trainer,
    TrainerCallback,
    TrainingArguments,
    set_seed,
)
from transformers.trainer_utils import get_last_checkpoint

LOG_FILE = "adapt_log.jsonl"
REPORT_FILE = "adaptation.json"
CHECKPOINTS = "checkpoints"
_TEST_NAME = re.compile(r"(^|[^a-z])(test|eval|evaluation)([^a-z]|$)")


@dataclass
class AdaptSettings:
    """The settings of one adaptation; stored in its report and checked on resume."""

    max_steps: int = 2000
    batch_size: int = 32
    max_length: int = 128
    learn_rate: float = 5e-5
    warmup_steps: int = 100
    head_warmup_steps: int = 100
    mlm_probability: float = 0.15
    whole_word_mask: bool = True
    heldout_docs: int = 200
    eval_steps: int = 200
    save_steps: int = 100
    logging_steps: int = 10
    seed: int = 0


def read_documents(paths: Iterable[Union[str, Path]], *, allow_test: bool = False) -> List[str]:
    """Read raw text files, one document per non-blank line.

    paths (Iterable[Path]): the text files.
    allow_test (bool): accept a file whose name says it is a test or evaluation
        split. Adapting on test text leaks it into every model made later.
    RETURNS (List[str]): the documents, in file order.
    """
    docs: List[str] = []
    for path in map(Path, paths):
        if not allow_test and _TEST_NAME.search(path.name.lower()):
            raise ValueError(
                f"{path}: its name says it is a test or evaluation split; adaptation must never read test "
                "text (pass allow_test=True, or --allow-test, if it is not one)"
            )
        with path.open(encoding="utf8") as file_:
            docs.extend(line.strip() for line in file_ if line.strip())
    if not docs:
        raise ValueError(f"No text in {', '.join(map(str, paths))}: expected one document per line")
    return docs


def wordpieces_per_word(tokenizer: Any, docs: Sequence[str], *, top: int = 20) -> Dict[str, Any]:
    """How finely the tokenizer cuts the text: wordpieces per word, the share of
    words cut into pieces, and the frequent words cut finest (the candidates for
    a vocabulary extension). Words are what the tokenizer's own normaliser and
    pre-tokenizer make of the text (BERT's: lower case for an uncased model,
    punctuation apart), so that "cells." counts as "cells" and "."."""
    split_words = pre_tokenizer(tokenizer)
    counts: Counter = Counter(word for doc in docs for word in split_words(doc))
    words = list(counts)
    pieces = tokenizer(words, add_special_tokens=False)["input_ids"]
    n_words = sum(counts.values())
    n_pieces = sum(len(p) * counts[w] for w, p in zip(words, pieces))
    split = sum(counts[w] for w, p in zip(words, pieces) if len(p) > 1)
    costly = sorted(((counts[w] * (len(p) - 1), w, len(p)) for w, p in zip(words, pieces)), reverse=True)[:top]
    return {
        "words": n_words,
        "wordpieces": n_pieces,
        "wordpieces_per_word": n_pieces / max(n_words, 1),
        "share_of_words_split": split / max(n_words, 1),
        "costliest_words": [{"word": w, "wordpieces": n, "extra_pieces": c} for c, w, n in costly],
    }


def pre_tokenizer(tokenizer: Any) -> Callable[[str], List[str]]:
    """The words a tokenizer cuts into wordpieces: a fast tokenizer's normaliser and
    pre-tokenizer, a slow BERT tokenizer's basic tokenizer, else whitespace."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is not None and backend.pre_tokenizer is not None:
        normalizer, pre = backend.normalizer, backend.pre_tokenizer

        def split(text: str) -> List[str]:
            text = normalizer.normalize_str(text) if normalizer is not None else text
            return [word for word, _ in pre.pre_tokenize_str(text)]

        return split
    basic = getattr(tokenizer, "basic_tokenizer", None)
    if basic is not None:
        return cast(Callable[[str], List[str]], basic.tokenize)
    return str.split


def make_blocks(tokenizer: Any, docs: Sequence[str], max_length: int) -> List[List[int]]:
    """Concatenate the documents' wordpieces (a separator after each) and cut
    them into blocks of `max_length` wordpieces, special tokens included."""
    inner = max_length - tokenizer.num_special_tokens_to_add(pair=False)
    sep = tokenizer.sep_token_id
    stream: List[int] = []
    for ids in tokenizer(list(docs), add_special_tokens=False, truncation=False, verbose=False)["input_ids"]:
        stream.extend(ids)
        if sep is not None:
            stream.append(sep)
    return [
        tokenizer.build_inputs_with_special_tokens(stream[i : i + inner])
        for i in range(0, len(stream) - inner // 4, inner)  # drop a last block of under a quarter
    ]


def split_heldout(docs: Sequence[str], n_heldout: int, seed: int) -> Tuple[List[str], List[str]]:
    """A fixed random sample of whole documents for the held-out perplexity."""
    order = list(range(len(docs)))
    random.Random(seed).shuffle(order)
    held = set(order[: min(n_heldout, len(docs) // 10)])
    return [d for i, d in enumerate(docs) if i not in held], [d for i, d in enumerate(docs) if i in held]


def adapt_encoder(
    encoder: Union[str, Path],
    output_path: Union[str, Path],
    texts: Sequence[Union[str, Path]],
    *,
    settings: Optional[AdaptSettings] = None,
    max_minutes: Optional[float] = None,
    stop_at_step: Optional[int] = None,
    allow_test: bool = False,
    progress_bar: bool = True,
) -> Dict[str, Any]:
    """Continue MLM training of `encoder` on `texts` and save the adapted
    encoder (with its tokenizer and MLM head) to `output_path`.

    A run resumes from the newest checkpoint in `output_path/checkpoints` when
    there is one, with the same settings (a mismatch raises). `max_minutes`
    ends a run early with a checkpoint, so one adaptation can span sessions;
    the folder is written either way, and the report says how far it got.

    encoder (str | Path): a Hugging Face hub name or local folder.
    output_path (str | Path): the folder to write.
    texts (Sequence[Path]): raw text files, one document per line; never test text.
    settings (AdaptSettings): training settings; defaults when None.
    max_minutes (float): stop (and checkpoint) after this many minutes.
    stop_at_step (int): stop (and checkpoint) at this step, the schedule still
        that of `settings.max_steps`: a stop that a later session can repeat.
    allow_test (bool): accept files named like test splits.
    progress_bar (bool): show the Trainer's progress bar.
    RETURNS (Dict[str, Any]): the report, also written to `output_path/adaptation.json`.
    """
    cfg = settings or AdaptSettings()
    out = Path(output_path)
    ckpt_dir = out / CHECKPOINTS
    ckpt_dir.mkdir(parents=True, exist_ok=True)
    settings_file = ckpt_dir / "settings.json"
    wanted = {"encoder": str(encoder), "texts": [str(t) for t in texts], **asdict(cfg)}
    last = get_last_checkpoint(str(ckpt_dir))
    if last is not None and settings_file.exists():
        stored = json.loads(settings_file.read_text(encoding="utf8"))
        changed = {k for k in wanted if k != "max_steps" and stored.get(k) != wanted[k]}
        if changed:
            raise ValueError(
                f"{settings_file}: the checkpoints were made with other settings ({', '.join(sorted(changed))}); "
                "resume with the same settings, or write to a new folder"
            )
    settings_file.write_text(json.dumps(wanted, indent=2), encoding="utf8")

    tokenizer = AutoTokenizer.from_pretrained(str(encoder), use_fast=True)
    docs = read_documents(texts, allow_test=allow_test)
    train_docs, heldout_docs = split_heldout(docs, cfg.heldout_docs, cfg.seed)
    train_blocks = make_blocks(tokenizer, train_docs, cfg.max_length)
    heldout_blocks = make_blocks(tokenizer, heldout_docs, cfg.max_length)
    if not train_blocks or not heldout_blocks:
        raise ValueError(f"Too little text in {', '.join(map(str, texts))} for blocks of {cfg.max_length}")
    collator_cls = DataCollatorForWholeWordMask if cfg.whole_word_mask else DataCollatorForLanguageModeling
    # seed: a value, so that the collator draws from its generator (which _Masker sets per batch)
    masker = _Masker(collator_cls(tokenizer=tokenizer, mlm_probability=cfg.mlm_probability, seed=cfg.seed), cfg.seed)
    heldout = _mask_once(masker, heldout_blocks, cfg.batch_size)

    set_seed(cfg.seed)  # a fresh head's initial weights
    model = AutoModelForMaskedLM.from_pretrained(str(encoder))
    args = TrainingArguments(
        output_dir=str(ckpt_dir),
        max_steps=cfg.max_steps,
        per_device_train_batch_size=cfg.batch_size,
        per_device_eval_batch_size=cfg.batch_size,
        learning_rate=cfg.learn_rate,
        warmup_steps=cfg.warmup_steps,
        weight_decay=0.01,
        eval_strategy="steps",
        eval_steps=cfg.eval_steps,
        save_strategy="steps",
        save_steps=cfg.save_steps,
        save_total_limit=2,
        logging_steps=cfg.logging_steps,
        prediction_loss_only=True,
        report_to=[],
        seed=cfg.seed,
        data_seed=cfg.seed,
        disable_tqdm=not progress_bar,
        dataloader_num_workers=0,
        remove_unused_columns=False,
        save_safetensors=True,
    )

    class Freeze(TrainerCallback):
        """The encoder learns only after the head's warm-up; ends a run early on time."""

        def __init__(self) -> None:
            self.start = time.monotonic()

        def on_step_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            trainable = state.global_step >= cfg.head_warmup_steps
            for param in model.base_model.parameters():
                param.requires_grad_(trainable)

        def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            if state.global_step == cfg.head_warmup_steps:
                control.should_evaluate = True
            out_of_time = max_minutes is not None and time.monotonic() - self.start > max_minutes * 60
            if out_of_time or (stop_at_step is not None and state.global_step >= stop_at_step):
                control.should_save = True
                control.should_training_stop = True

        def on_log(self, args: Any, state: Any, control: Any, logs: Optional[Dict] = None, **kwargs: Any) -> None:
            if logs:
                record = {"step": state.global_step, **logs}
                if "eval_loss" in logs:
                    record["eval_perplexity"] = math.exp(logs["eval_loss"])
                with (out / LOG_FILE).open("a", encoding="utf8") as file_:
                    file_.write(json.dumps(record) + "\n")

    trainer: Any = MaskedOnlyTrainer(
        model=model,
        args=args,
        train_dataset=[{"input_ids": b, "index": i} for i, b in enumerate(train_blocks)],
        eval_dataset=heldout,
        data_collator=masker,
        callbacks=[Freeze()],
    )
    if last is None:
        trainer.evaluate()  # step 0: the fresh head
    trainer.train(resume_from_checkpoint=last)
    final = trainer.evaluate()
    model.save_pretrained(str(out), safe_serialization=True)
    tokenizer.save_pretrained(str(out))
    # The log file, not the trainer's state: that starts empty in train(), after the step-0 evaluation.
    with (out / LOG_FILE).open(encoding="utf8") as file_:
        history = [r for r in map(json.loads, file_) if "eval_loss" in r]
    report = {
        "encoder": str(encoder),
        "texts": [str(t) for t in texts],
        "settings": asdict(cfg),
        "steps": trainer.state.global_step,
        "complete": trainer.state.global_step >= cfg.max_steps,
        "train_blocks": len(train_blocks),
        "heldout_blocks": len(heldout_blocks),
        "heldout_docs": len(heldout_docs),
        "epochs": trainer.state.global_step * cfg.batch_size / len(train_blocks),
        "heldout_perplexity": {
            "fresh_head": _perplexity_at(history, 0),
            "head_warmed_up": _perplexity_at(history, cfg.head_warmup_steps),
            "final": math.exp(final["eval_loss"]),
        },
        "tokenization": wordpieces_per_word(tokenizer, train_docs, top=20),
        "torch_threads": torch.get_num_threads(),
    }
    (out / REPORT_FILE).write_text(json.dumps(report, indent=2), encoding="utf8")
    return report


def _perplexity_at(history: List[Dict[str, Any]], step: int) -> Optional[float]:
    for record in history:
        if record.get("step") == step:
            return math.exp(record["eval_loss"])
    return None


def _mask_once(masker: "_Masker", blocks: List[List[int]], batch_size: int) -> List[Dict[str, Any]]:
    """Mask the held-out blocks once, so every evaluation scores the same positions."""
    out: List[Dict[str, Any]] = []
    for i in range(0, len(blocks), batch_size):
        chunk = blocks[i : i + batch_size]
        batch = masker([{"input_ids": b, "index": -1 - i - j} for j, b in enumerate(chunk)])
        out.extend({key: value[j] for key, value in batch.items()} for j in range(len(chunk)))
    return out


class _Masker:
    """Collate premasked (held-out) examples as they are; mask the others with
    a generator seeded by their block indices. The masks then survive a resume
    (transformers' Trainer fetches the first batch after a resume before it
    restores the RNG state) and no draw is taken from the global RNG."""

    def __init__(self, collator: Any, seed: int) -> None:
        if not hasattr(collator, "generator"):
            raise ImportError("adapt-encoder needs a transformers release whose MLM collators take a generator")
        self.collator = collator
        self.seed = seed

    def __call__(self, features: List[Dict[str, Any]]) -> Dict[str, Any]:
        if "labels" in features[0]:
            return {key: torch.stack([f[key] for f in features]) for key in features[0]}
        indices = [int(f["index"]) for f in features]
        key = zlib.crc32(struct.pack(f"<{len(indices) + 1}q", self.seed, *indices))
        self.collator.generator = torch.Generator().manual_seed(key)
        return self.collator([{"input_ids": f["input_ids"]} for f in features])


def _masked_only_loss(model: Any, inputs: Dict[str, Any]) -> Any:
    """The MLM loss with the head applied at masked positions only (BERT's
    `cls` head); other architectures take their full forward pass."""
    inputs = dict(inputs)
    labels = inputs.pop("labels")
    head = getattr(model, "cls", None)
    if head is None:
        return model(**inputs, labels=labels).loss
    hidden = model.base_model(**inputs).last_hidden_state
    chosen = labels != -100
    logits = head(hidden[chosen])
    return torch.nn.functional.cross_entropy(logits, labels[chosen])


class MaskedOnlyTrainer(Trainer):
    """transformers' Trainer with the masked-positions-only MLM loss."""

    def compute_loss(self, model: Any, inputs: Dict[str, Any], return_outputs: bool = False, **kwargs: Any) -> Any:
        loss = _masked_only_loss(model, inputs)
        return (loss, {"loss": loss}) if return_outputs else loss
