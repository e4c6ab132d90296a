"""The docs a deployment engineer reads first stay true: the CLI reference matches the CLI, links resolve.

docs/cli.md is generated from `trtq.cli.build_parser()` by scripts/gen_cli_docs.py; these tests fail when a
command or option changes and the page was not regenerated, and when a relative link or `#anchor` in
README.md, CHANGELOG.md, docker/README.md or docs/*.md points at nothing.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
GEN = ROOT / "scripts" / "gen_cli_docs.py"
CLI_MD = ROOT / "docs" / "cli.md"


def _gen(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(GEN), *args], cwd=ROOT, capture_output=True, text=True, timeout=120
    )


def _subparsers() -> dict:
    import argparse

    from trtq.cli import build_parser

    parser = build_parser()
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(action.choices)


# ---- docs/cli.md ---------------------------------------------------------------------------------------


def test_cli_md_matches_the_cli() -> None:
    proc = _gen("--check")
    assert proc.returncode == 0, (
        f"docs/cli.md is stale; run `python scripts/gen_cli_docs.py`:\n{proc.stderr[-3000:]}"
    )


def test_cli_md_documents_every_command_and_option() -> None:
    """Independent of the generator's layout: every sub-command and every option string is on the page."""
    text = CLI_MD.read_text()
    commands = _subparsers()
    assert {"build", "demo"} <= set(commands)
    for name, sub in commands.items():
        assert f"## trtq {name}\n" in text, f"no section for trtq {name}"
        section = text.split(f"## trtq {name}\n", 1)[1].split("\n## ", 1)[0]
        for action in sub._actions:
            for opt in action.option_strings:
                if opt in ("-h", "--help"):
                    continue
                # shared options are documented once, at the top; the rest in the command's section
                assert opt in section or opt in text.split("## trtq ", 1)[0], (
                    f"trtq {name} {opt} undocumented"
                )
        if sub.description:
            assert " ".join(sub.description.split()) in section


def test_check_mode_fails_on_a_stale_file_and_writing_fixes_it(tmp_path: Path) -> None:
    out = tmp_path / "cli.md"
    out.write_text(CLI_MD.read_text().replace("## trtq build", "## trtq biuld"))
    stale = _gen("--check", "--output", str(out))
    assert stale.returncode == 1
    assert "stale" in stale.stderr and "biuld" in stale.stderr  # the diff shows what differs
    assert _gen("--check", "--output", str(tmp_path / "missing.md")).returncode == 1

    written = _gen("--output", str(out))
    assert written.returncode == 0, written.stderr
    assert _gen("--check", "--output", str(out)).returncode == 0
    assert "## trtq build\n" in out.read_text() and "biuld" not in out.read_text()


def test_generated_page_shows_defaults_choices_and_required_options() -> None:
    text = CLI_MD.read_text()
    build = text.split("## trtq build\n", 1)[1].split("\n## ", 1)[0]
    export = text.split("## trtq export\n", 1)[1].split("\n## ", 1)[0]
    assert re.search(r"\| `--model, -m MODEL` \| \*\*required\*\* \|", export)
    # build takes --model or --from-qat, so --model is optional there; --out is required
    assert re.search(r"\| `--model, -m MODEL` \| \|", build) or "`--model, -m MODEL` |  |" in build
    assert re.search(r"\| `--out, -o OUT` \| \*\*required\*\* \|", build)
    # the method names come from the calibrator registry; defaults live in the configuration and the help says them
    calib = next(line for line in build.splitlines() if line.startswith("| `--calib METHOD`"))
    assert "entropy, minmax, percentile, mse" in calib and "(default entropy)" in calib
    assert "trtq build" in build and "[options]" in build


# ---- links ---------------------------------------------------------------------------------------------

LINK = re.compile(r"(?<!!)\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")
FENCE = re.compile(r"^(```|~~~).*?^\1\s*$", re.S | re.M)
INLINE_CODE = re.compile(r"`[^`\n]*`")


def _doc_files() -> list[Path]:
    files = [ROOT / "README.md", ROOT / "CHANGELOG.md", ROOT / "docker" / "README.md"]
    files += sorted((ROOT / "docs").glob("*.md"))
    return [f for f in files if f.exists()]


def _slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = INLINE_CODE.sub(lambda m: m.group(0)[1:-1], heading.strip()).lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def _anchors(md: Path) -> set[str]:
    text = FENCE.sub("", md.read_text())
    return {_slug(m.group(1)) for m in re.finditer(r"^#{1,6}\s+(.+?)\s*#*\s*$", text, re.M)}


def broken_links(md: Path) -> list[str]:
    """Relative links (and #anchors into markdown files) in `md` that point at nothing."""
    text = INLINE_CODE.sub("", FENCE.sub("", md.read_text()))
    problems = []
    for target in LINK.findall(text):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target, re.I):  # http:, https:, mailto:
            continue
        path_part, _, anchor = target.partition("#")
        dest = (md.parent / path_part).resolve() if path_part else md
        if not dest.exists():
            problems.append(f"{md.relative_to(ROOT)}: {target} (no such file)")
            continue
        if anchor and dest.suffix == ".md" and anchor not in _anchors(dest):
            problems.append(f"{md.relative_to(ROOT)}: {target} (no heading #{anchor})")
    return problems


def test_every_relative_link_in_the_docs_resolves() -> None:
    files = _doc_files()
    names = {f.relative_to(ROOT).as_posix() for f in files}
    assert {"README.md", "CHANGELOG.md", "docker/README.md", "docs/ARCHITECTURE.md", "docs/cli.md"} <= names
    problems = [p for f in files for p in broken_links(f)]
    assert not problems, "broken links:\n" + "\n".join(problems)
    # the README really links the docs (so the check above is not vacuous)
    readme_links = LINK.findall(INLINE_CODE.sub("", FENCE.sub("", (ROOT / "README.md").read_text())))
    assert {"docs/ARCHITECTURE.md", "docs/cli.md", "docker/README.md", "CHANGELOG.md"} <= set(readme_links)


def test_link_checker_catches_missing_files_and_anchors(tmp_path: Path) -> None:
    (tmp_path / "other.md").write_text("# Real heading\n")
    md = tmp_path / "page.md"
    md.write_text(
        "# Top\n[ok](other.md) [ok](other.md#real-heading) [ok](#top) [web](https://example.com/x)\n"
        "[bad](missing.md) [bad](other.md#nope) [bad](#nowhere)\n"
        "```\n[in code](ignored.md)\n```\n`[inline](ignored2.md)`\n"
    )
    global ROOT
    saved, ROOT = ROOT, tmp_path
    try:
        problems = broken_links(md)
    finally:
        ROOT = saved
    assert len(problems) == 3, problems
    assert any("missing.md" in p for p in problems)
    assert any("#nope" in p for p in problems) and any("#nowhere" in p for p in problems)


# ---- README, CHANGELOG ---------------------------------------------------------------------------------


def _project_version() -> str:
    tomllib = pytest.importorskip("tomllib")
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]


def test_changelog_has_the_current_version_and_the_breaking_changes_convention() -> None:
    text = (ROOT / "CHANGELOG.md").read_text()
    version = _project_version()
    assert re.search(rf"^## \[{re.escape(version)}\]", text, re.M), f"CHANGELOG.md has no ## [{version}]"
    assert re.search(r"^## \[Unreleased\]", text, re.M)
    release = text.split(f"## [{version}]", 1)[1].split("\n## [", 1)[0]
    sections = re.findall(r"^### (.+)$", release, re.M)
    assert sections and sections[0] == "Breaking changes", sections


def test_readme_shows_the_container_commands_next_to_the_local_ones() -> None:
    text = (ROOT / "README.md").read_text()
    use = text.split("## Use", 1)[1].split("\n## ", 1)[0]
    assert "### Containers" in use
    local = re.search(r"```bash\n(trtq build .*?)```", use, re.S)
    container = use.split("### Containers", 1)[1]
    assert local and "docker run --rm --gpus all" in container and '-v "$PWD":/work' in container
    assert "docker build -f docker/Dockerfile" in container
    # the container command runs the same trtq build arguments as the local one
    local_args = " ".join(local.group(1).replace("\\\n", " ").split()[2:])
    docker_cmd = re.search(r"```bash\n(.*?)```", container, re.S).group(1)
    assert local_args in " ".join(docker_cmd.replace("\\\n", " ").split())
