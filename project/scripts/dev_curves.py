"""Dev curves of teacher runs, side by side: the dev P/R/F at each evaluation, from the
`train_log.jsonl` that `spacy fastbioner train` writes, added to (or replacing) the runs of an
existing curves file, so that runs of `spacy train` recorded there earlier stay.

Usage: python project/scripts/dev_curves.py RUN_DIR... --output results/adaptation-dev-curves.json
"""

import json
from pathlib import Path
from typing import Any, Dict, List

import typer
from thinc.api import Config


def read_curve(run_dir: Path) -> List[Dict[str, Any]]:
    """The dev scores by step of a run, in percent."""
    path = run_dir / "train_log.jsonl"
    if not path.is_file():
        raise typer.BadParameter(f"{path}: no such file (a run of `spacy fastbioner train` writes it)")
    curve = []
    for n, line in enumerate(path.read_text(encoding="utf8").splitlines(), start=1):
        try:
            entry = json.loads(line)
            curve.append({"step": entry["step"], **{f"dev_{k}": round(100 * entry[f"ents_{k}"], 2) for k in "fpr"}})
        except (ValueError, KeyError) as err:
            raise typer.BadParameter(f"{path}:{n}: expected a JSON object with step and ents_p/r/f ({err})") from None
    return curve


def main(
    run_dirs: List[Path] = typer.Argument(..., help="Run folders (training/<corpus>/<name>)"),
    output: Path = typer.Option(..., "--output", help="The curves file, updated in place"),
) -> None:
    data: Dict[str, Any] = json.loads(output.read_text(encoding="utf8")) if output.is_file() else {"runs": {}}
    for run_dir in run_dirs:
        config = Config().from_disk(run_dir / "model-last" / "config.cfg", interpolate=True)
        encoder = config["components"]["transformer"]["model"]["name"]
        data["runs"][run_dir.name] = {"encoder": encoder, "dev_curve": read_curve(run_dir)}
    output.write_text(json.dumps(data, indent=None) + "\n", encoding="utf8")
    for name, run in data["runs"].items():
        best = max(run["dev_curve"], key=lambda point: point["dev_f"])
        typer.echo(f"{name}: best dev F {best['dev_f']:.2f} at step {best['step']} of {run['dev_curve'][-1]['step']}")


if __name__ == "__main__":
    typer.run(main)
