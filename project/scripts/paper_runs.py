"""Run the paper table's project commands for one corpus: its teacher once,
then a student per variant and seed from the same student-init, then the
package of the first seed's dynamic-KD student. spaCy project commands
cannot loop, so this runs `spacy project run CMD . --vars...` per step.

A step whose outputs all exist is skipped (weasel's lockfile remembers only
the last vars a command ran with), so an interrupted run resumes; --force
runs every step again. Extra `--vars.X VALUE` arguments go to every step.
"""

import shlex
import subprocess
import sys
from pathlib import Path
from typing import Dict, List, Sequence, Tuple

import srsly
import typer
from wasabi import msg
from weasel.util import substitute_project_variables

PROJECT_DIR = Path(__file__).parent.parent.parent
# Variant -> project command; each writes metrics/<corpus>/student-<variant>-seed<k>.json.
VARIANT_COMMANDS = {
    "dynamic": "distill-seed",
    "constant": "distill-constant-seed",
    "nokd": "train-student-nokd-seed",
    "cosine": "distill-cosine-seed",
    "live": "distill-live-seed",
    # Not a training run: the dynamic-KD student of the seed in PyTorch and ONNX Runtime int8.
    "int8": "int8-seed",
    # Not a training run either: the dynamic-KD student of the seed in OpenVINO's static int8.
    "openvino": "openvino-seed",
    # The same, with packed batches (the project's fast student).
    "openvino-packed": "openvino-packed-seed",
}
TEACHER_STEPS = (
    "assets-local",
    "demo-teacher-model",
    "corpus",
    "demo-train-teacher",
    "evaluate-teacher",
    "make-student",
    "teacher-targets",
)
PACKAGE_STEP = "package-paper-student"

app = typer.Typer(add_completion=False)


def plan(
    corpus: str, seeds: Sequence[int], variants: Sequence[str], dev_limit: int, extra: Dict[str, str]
) -> List[Tuple[str, Dict[str, str]]]:
    """The steps in order: (project command, its --vars overrides)."""
    base = {"vars.corpus": corpus, "vars.dev_limit": str(dev_limit), **extra}
    steps = [(name, dict(base)) for name in TEACHER_STEPS]
    for seed in seeds:
        steps += [(VARIANT_COMMANDS[variant], {**base, "vars.seed": str(seed)}) for variant in variants]
    steps.append((PACKAGE_STEP, {**base, "vars.seed": str(seeds[0])}))
    return steps


def outputs_exist(project_dir: Path, command: str, overrides: Dict[str, str]) -> bool:
    """Whether every output the command declares (with these vars) exists."""
    # Not weasel's load_project_config: it also creates the project's directories.
    config = substitute_project_variables(srsly.read_yaml(project_dir / "project.yml"), overrides)
    spec = next(cmd for cmd in config["commands"] if cmd["name"] == command)
    outputs = spec.get("outputs", [])
    return bool(outputs) and all((project_dir / out).exists() for out in outputs)


def parse_extra(args: Sequence[str]) -> Dict[str, str]:
    """'--vars.gpu_id 0' or '--vars.gpu_id=0' pairs -> {"vars.gpu_id": "0"}."""
    extra: Dict[str, str] = {}
    items = list(args)
    while items:
        item = items.pop(0)
        if not item.startswith("--vars."):
            msg.fail(f"Unexpected argument {item!r}: expected --vars.NAME VALUE", exits=1)
        key, sep, value = item[2:].partition("=")
        if not sep:
            if not items:
                msg.fail(f"No value after {item}", exits=1)
            value = items.pop(0)
        extra[key] = value
    return extra


@app.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def main(
    # fmt: off
    ctx: typer.Context,
    corpus: str = typer.Argument(..., help="Corpus, e.g. NCBI-disease"),
    seeds: str = typer.Option(
        "1,2,3", "--seeds", help="Comma-separated seeds; the first one's dynamic-KD student is packaged"
    ),
    variants: str = typer.Option(
        "dynamic,constant,nokd", "--variants", help=f"Comma-separated student variants: {', '.join(VARIANT_COMMANDS)}"
    ),
    dev_limit: int = typer.Option(
        0, "--dev-limit", help="Dev sentences scored during training (0 = all); the test set is always complete"
    ),
    force: bool = typer.Option(False, "--force", help="Run steps whose outputs exist too"),
    dry: bool = typer.Option(False, "--dry", help="Print the steps and whether they would run, run nothing"),
    # fmt: on
) -> None:
    seed_list = [s.strip() for s in seeds.split(",") if s.strip()]
    if not seed_list or not all(s.isdigit() for s in seed_list):
        msg.fail(f"Invalid --seeds {seeds!r}: expected comma-separated integers, e.g. 1,2,3", exits=1)
    variant_list = [v.strip() for v in variants.split(",") if v.strip()]
    unknown = [v for v in variant_list if v not in VARIANT_COMMANDS]
    if not variant_list or unknown:
        msg.fail(f"Invalid --variants {variants!r}: expected some of {','.join(VARIANT_COMMANDS)}", exits=1)
    for command, overrides in plan(corpus, [int(s) for s in seed_list], variant_list, dev_limit, parse_extra(ctx.args)):
        args = [sys.executable, "-m", "spacy", "project", "run", command, str(PROJECT_DIR)]
        args += [arg for key, value in overrides.items() for arg in (f"--{key}", value)]
        args += ["--force"] if force else []
        line = shlex.join(["python", *args[1:]])  # print, not msg: one unwrapped, copyable line
        if not force and outputs_exist(PROJECT_DIR, command, overrides):
            print(f"skip (outputs exist): {line}", flush=True)
            continue
        print(f"{'would run' if dry else 'run'}: {line}", flush=True)
        if not dry and subprocess.run(args).returncode != 0:
            msg.fail(f"Step {command} failed for {corpus} ({overrides})", exits=1)


if __name__ == "__main__":
    app()
