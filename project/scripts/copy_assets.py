"""Copy a corpus's IOB files, the raw PubTator files and the unlabelled
abstracts from a local folder laid out like ../shared/data into assets/."""

import shutil
from pathlib import Path

import typer
from wasabi import msg


def main(data_dir: Path, assets_dir: Path, corpus: str = typer.Option(..., help="e.g. NCBI-disease")):
    src = data_dir / f"{corpus}-IOB"
    if not src.is_dir():
        msg.fail(f"{src} not found: expected {corpus}-IOB/{{train,devel,test}}.tsv in {data_dir}", exits=1)
    shutil.copytree(src, assets_dir / src.name, dirs_exist_ok=True)
    if (data_dir / "raw").is_dir():
        shutil.copytree(data_dir / "raw", assets_dir / "raw", dirs_exist_ok=True)
    msg.good(f"Copied {corpus} (and raw text, if any) from {data_dir} to {assets_dir}")


if __name__ == "__main__":
    typer.run(main)
