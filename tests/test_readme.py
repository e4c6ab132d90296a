"""The README is executed, so it cannot rot.

- The quickstart has exactly two commands. The second (install + tests) is what CI runs through `.ci/run`;
  running it from inside the test suite would recurse, so this test checks CI calls it and runs the first for
  real: install into the current virtual environment, then the offline demo, whose report must show real FP32
  and INT8 accuracies. That demo folder is the fixture the other commands run against.
- Every `trtq` command in the README's bash blocks (continuation lines joined, `NAME=value` lines of the block
  substituted, `docker run ... trtq:TAG ARGS` read as `trtq ARGS`) is either run, when it works on the demo's
  folder (`runs/demo/...`), or listed in `PARSE_ONLY` with the reason it cannot run here; those are parsed by
  trtq's own parser and their configuration validated. A command in neither fails the test, and so does an entry
  of `PARSE_ONLY` that matches no command.
- The Python example is executed on small image folders.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"

#: The folder the README's demo-folder commands use (`D=runs/demo/demo`), relative to where they run.
DEMO_OUT = "runs/demo"

#: trtq commands that cannot run here (key: a piece of the command's text unique to it) and why; each is parsed
#: by trtq's parser and its configuration validated instead.
PARSE_ONLY = {
    "trtq build --model resnet50 --weights DEFAULT": "downloads resnet50's ImageNet weights (no network in "
    "tests); calib_images/ and val_images/ stand for the user's data",
    "--model path/to/hf_bert": "path/to/hf_bert, calib.npz and eval.npz stand for the user's model and data "
    "(HF folders are built for real in tests/pipeline/test_transformers.py)",
    "trtq:trt11 build": "runs in the GPU image of docker/ (no Docker engine here) and downloads resnet50's "
    "weights; parsed as the image's entry point `trtq` receives it",
}

#: Options appended when a demo-folder command runs here, so the whole test stays near a minute on a loaded
#: 2-core machine: `trtq qat` as written trains 2 epochs on 1200 images (40-90 s here); every option the README
#: gives is still parsed and used, on a smaller run.
SMALLER = {
    "qat": ["--epochs", "1", "--train-samples", "256", "--val-samples", "200", "--calib-samples", "64",
            "--threads", "1"],
}  # fmt: skip


@dataclass(frozen=True)
class Command:
    """One trtq command of the README: its text as written (lines joined) and trtq's arguments."""

    text: str
    argv: tuple[str, ...]

    @property
    def on_demo_folder(self) -> bool:
        return any(a == DEMO_OUT or a.startswith(DEMO_OUT + "/") for a in self.argv)

    @property
    def out(self) -> str:
        return self.argv[self.argv.index("--out") + 1]


def bash_blocks(text: str) -> list[str]:
    return re.findall(r"```bash\n(.*?)```", text, re.S)


def _lines(block: str) -> list[str]:
    """The block's commands: comments dropped, backslash continuations joined."""
    out, cur = [], ""
    for raw in block.splitlines():
        line = raw.split(" #", 1)[0].rstrip() if not raw.lstrip().startswith("#") else ""
        if line.endswith("\\"):
            cur += line[:-1].strip() + " "
            continue
        cur += line.strip()
        if cur:
            out.append(cur)
        cur = ""
    return out


def readme_commands(text: str | None = None) -> list[Command]:
    """Every trtq command of the README's bash blocks, in order."""
    commands = []
    for block in bash_blocks(README.read_text() if text is None else text):
        env: dict[str, str] = {}
        for line in _lines(block):
            if m := re.fullmatch(r"([A-Za-z_]\w*)=(\S+)", line):
                env[m.group(1)] = m.group(2)
                continue
            expanded = re.sub(r"\$(\w+)", lambda m, env=env: env.get(m.group(1), m.group(0)), line)
            words = shlex.split(expanded)
            if words[:1] == ["trtq"]:
                commands.append(Command(line, tuple(words[1:])))
            elif words[:2] == ["docker", "run"]:
                image = next((i for i, w in enumerate(words) if w.startswith("trtq:")), None)
                if image is not None:
                    commands.append(Command(line, tuple(words[image + 1 :])))
    return commands


def _parse_only(cmd: Command) -> str | None:
    return next((key for key in PARSE_ONLY if key in cmd.text), None)


# --- the quickstart ---------------------------------------------------------------------------------------


def quickstart_commands() -> list[str]:
    text = README.read_text()
    block = re.search(r"<!-- quickstart -->\s*```bash\n(.*?)```\s*<!-- /quickstart -->", text, re.S)
    assert block, "README.md lost its quickstart block"
    return [line.strip() for line in block.group(1).splitlines() if line.strip() and not line.startswith("#")]


@pytest.fixture(scope="module")
def demo_root(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, subprocess.CompletedProcess]:
    """The quickstart's demo command, run once: (the folder holding runs/demo, the finished process)."""
    root = tmp_path_factory.mktemp("readme")
    demo = quickstart_commands()[0]
    env = dict(os.environ, TRTQ_VENV=str(Path(sys.prefix)), TRTQ_DEMO_OUT=str(root / DEMO_OUT))
    proc = subprocess.run([str(ROOT / demo)], cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
    return root, proc


def test_quickstart_has_two_commands_and_ci_runs_the_test_one() -> None:
    demo, tests = quickstart_commands()
    assert demo == "./scripts/demo.sh" and tests == "./scripts/test.sh"
    assert "scripts/test.sh" in (ROOT / ".ci" / "run").read_text()
    for cmd in (demo, tests):
        assert os.access(ROOT / cmd, os.X_OK), f"{cmd} is not executable"


def test_quickstart_demo_command_runs_end_to_end(demo_root) -> None:
    root, proc = demo_root
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "INT8 (model.int8.onnx)" in proc.stdout and "top-1" in proc.stdout
    report = json.loads((root / DEMO_OUT / "run" / "report.json").read_text())
    models = report["validation"]["models"]
    assert models["fp32"]["top1_accuracy"] > 0.9 and models["int8"]["top1_accuracy"] > 0.9
    assert "TensorRT" in report["engine_status"]
    assert sorted(p.name for p in (root / DEMO_OUT / "run").glob("calib_*.png"))  # the histograms


# --- every trtq command of the README -----------------------------------------------------------------------


def test_every_trtq_command_is_run_or_parsed_with_a_reason() -> None:
    commands = readme_commands()
    unaccounted = [c.text for c in commands if not c.on_demo_folder and _parse_only(c) is None]
    assert not unaccounted, (
        "README commands no test runs (run them on the demo folder, or add to PARSE_ONLY):\n"
        + ("\n".join(unaccounted))
    )
    stale = [key for key in PARSE_ONLY if not any(key in c.text for c in commands)]
    assert not stale, f"PARSE_ONLY entries that match no README command: {stale}"
    both = [c.text for c in commands if c.on_demo_folder and _parse_only(c) is not None]
    assert not both, f"commands on the demo folder are run, not parse-only: {both}"
    assert any(c.on_demo_folder for c in commands) and len(commands) > len(PARSE_ONLY)
    # nothing that reads as a trtq invocation escaped the extraction
    extracted = {c.text for c in commands}
    for block in bash_blocks(README.read_text()):
        for line in _lines(block):
            if re.search(r"(^|[\s;&|(])trtq\s+[a-z-]", line) or re.search(r"\strtq:\S+\s+[a-z]", line):
                assert line in extracted, f"not extracted: {line}"


def test_the_extraction_reads_continuations_variables_and_docker() -> None:
    text = (
        "```bash\nD=runs/demo/x\ntrtq build --model $D/m.ts \\\n    --out o  # comment\n# trtq nope\n"
        'pip install x\ndocker run --rm -v "$PWD":/work trtq:trt11 \\\n    validate a b\n```\n'
        "```python\ntrtq build --ignored\n```\n"
    )
    got = readme_commands(text)
    assert [c.argv for c in got] == [
        ("build", "--model", "runs/demo/x/m.ts", "--out", "o"),
        ("validate", "a", "b"),
    ]
    assert got[0].on_demo_folder and not got[1].on_demo_folder


def _parse_only_commands() -> list[Command]:
    return [c for c in readme_commands() if _parse_only(c) is not None]


@pytest.mark.parametrize("cmd", _parse_only_commands(), ids=lambda c: _parse_only(c) or c.text)
def test_commands_that_cannot_run_here_parse_and_validate(cmd: Command) -> None:
    from trtq.cli import build_parser

    args = build_parser().parse_args(list(cmd.argv))  # argparse exits (SystemExit 2) on an unknown option
    if args.command == "build":
        from trtq.cli._options import config_from_args

        config = config_from_args(args).validate()
        assert str(config.out) == cmd.out
    elif args.command == "qat":
        from trtq.finetune import QATConfig

        QATConfig.from_args(args).validate()
    weights = getattr(args, "weights", None)
    if weights is not None and ":" not in args.model and "/" not in args.model:  # a torchvision name
        import torchvision

        assert args.model in torchvision.models.list_models(), args.model
        enum = torchvision.models.get_model_weights(args.model)
        assert weights == "DEFAULT" or weights in enum.__members__, weights


def _demo_commands() -> list[Command]:
    return [c for c in readme_commands() if c.on_demo_folder]


@pytest.mark.parametrize("cmd", _demo_commands(), ids=lambda c: f"{c.argv[0]}->{c.out}")
def test_commands_on_the_demo_folder_run(cmd: Command, demo_root, monkeypatch: pytest.MonkeyPatch) -> None:
    from trtq.cli import main
    from trtq.rundir import read_marker

    root, proc = demo_root
    assert proc.returncode == 0, proc.stderr[-3000:]
    monkeypatch.chdir(root)  # where the README's relative paths (runs/demo/..., --out runs/...) resolve
    assert main([*cmd.argv, *SMALLER.get(cmd.argv[0], []), "--quiet"]) == 0
    out = root / cmd.out
    assert read_marker(out) is not None, f"{cmd.out} is not a trtq run folder"
    report = out / ("run" if cmd.argv[0] == "qat" else "") / "report.json"
    models = json.loads(report.read_text())["validation"]["models"]
    assert models["int8"]["top1_accuracy"] > 0.9, models
    if cmd.argv[0] == "qat":
        assert (out / "model.qat.onnx").is_file() and (out / "training_curves.png").is_file()
    if "--max-drop" in cmd.argv:
        assert (out / "sensitivity.png").is_file()


# --- the Python example ---------------------------------------------------------------------------------------


def python_example() -> str:
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), re.S)
    assert len(blocks) == 1, "the README has one Python example"
    return blocks[0]


def test_the_python_example_runs_on_small_data(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    from tests.zoo.data import make_image_folder

    code = python_example()
    paths = re.findall(r'"([\w/]+/)"', code)
    assert {"calib_images/", "val_images/"} <= set(paths), paths
    monkeypatch.chdir(tmp_path)
    make_image_folder(tmp_path / "calib_images", classes=2, per_class=4, size=40)
    make_image_folder(tmp_path / "val_images", classes=2, per_class=4, size=40)
    namespace: dict = {}
    exec(compile(code, "README.md (python)", "exec"), namespace)  # noqa: S102
    printed = capsys.readouterr().out.split()
    values = [float(v) for v in printed[:3]]
    assert all(0.0 <= v <= 1.0 for v in values), printed
    result = namespace["result"]
    assert Path(printed[3]) == result.int8_onnx and (tmp_path / result.int8_onnx).is_file()
    assert namespace["engine_bytes"] is None  # no TensorRT here
