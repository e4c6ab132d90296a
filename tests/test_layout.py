"""The tests mirror the package: every module of trtq/ has its test file, and every test file has its module.

`trtq/X/Y.py` is tested in `tests/X/test_Y.py` (a private `_Y.py` in `test_Y.py`); a top-level `trtq/Y.py` in
`tests/test_Y.py`; a package's `__init__.py` in `tests/X/test_init.py`, unless it only re-exports (no function or
class of its own). A module's tests may be split by aspect as `test_Y_<aspect>.py`. The lists below are the only
exceptions, each with its reason; an entry that no longer applies fails the test, so the lists stay short.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "trtq"
TESTS = ROOT / "tests"

#: Modules whose test files another worktree of the same change is writing (remove each entry when they land).
#: Empty: kept for changes made in parallel, where one branch adds a module and another its tests.
PENDING: dict[str, str] = {}

#: Test files that test the repository or a behaviour across modules rather than one module.
NOT_A_MODULE = {
    "tests/test_docs.py": "the docs: generated CLI page, links",
    "tests/test_readme.py": "the README executed: quickstart, every trtq command, the Python example",
    "tests/test_docker.py": "the container files",
    "tests/test_scripts.py": "scripts/ that need a GPU",
    "tests/test_layout.py": "this file",
    "tests/zoo/test_zoo.py": "the test zoo's own entries",
    "tests/pipeline/test_identity.py": "build and the stage commands write the same bytes",
    "tests/finetune/test_cli.py": "trtq qat end to end against the shared QAT run (parser: tests/cli/test_qat.py)",
    "tests/cli/test_startup.py": "every command's --help/--version stays light (the CLI as a whole)",
    "tests/pipeline/stages/test_run_folder.py": "what a whole build writes into its run folder",
    "tests/plugins/toy_trtq_plugin.py": "a plugin module outside trtq, used by tests/test_plugins.py",
    "tests/pipeline/test_transformers.py": "transformer models (HF BERT, ViTs, sentence encoders) through trtq build",
}


def _defines_behaviour(init: Path) -> bool:
    """Whether an __init__.py has a function or class of its own (else it only re-exports)."""
    tree = ast.parse(init.read_text(encoding="utf-8"))
    return any(isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) for n in tree.body)


def _test_file(module: Path) -> Path:
    rel = module.relative_to(PACKAGE)
    stem = "init" if rel.name == "__init__.py" else rel.stem.lstrip("_")
    return TESTS / rel.parent / f"test_{stem}.py"


def _modules_needing_tests() -> dict[str, Path]:
    out = {}
    for module in sorted(PACKAGE.rglob("*.py")):
        if module.name == "__main__.py" or (module.name == "__init__.py" and not _defines_behaviour(module)):
            continue
        out[module.relative_to(ROOT).as_posix()] = _test_file(module)
    return out


def test_every_module_has_a_test_file():
    missing = [
        f"{mod} -> {test.relative_to(ROOT)}"
        for mod, test in _modules_needing_tests().items()
        if not test.is_file() and mod not in PENDING
    ]
    assert not missing, "modules without a test file (tests mirror the package):\n" + "\n".join(missing)


def test_pending_entries_still_apply():
    needing = _modules_needing_tests()
    stale = [f"{mod}: no such module (or it only re-exports)" for mod in PENDING if mod not in needing]
    stale += [
        f"{mod}: {needing[mod].relative_to(ROOT)} exists now; remove it from PENDING"
        for mod in PENDING
        if mod in needing and needing[mod].is_file()
    ]
    assert not stale, "\n".join(stale)


def _module_of(test: Path) -> Path | None:
    """The module a test file tests: test_Y.py -> Y.py or _Y.py; test_init.py -> __init__.py; test_Y_aspect.py -> Y."""
    rel = test.relative_to(TESTS)
    folder = PACKAGE / rel.parent
    name = rel.stem[len("test_") :]
    if name == "init":
        return folder / "__init__.py" if (folder / "__init__.py").is_file() else None
    parts = name.split("_")
    for k in range(len(parts), 0, -1):  # the longest module name the file name starts with
        stem = "_".join(parts[:k])
        for candidate in (folder / f"{stem}.py", folder / f"_{stem}.py"):
            if candidate.is_file():
                return candidate
    return None


def test_every_test_file_tests_a_module_of_the_same_place():
    orphans = [
        test.relative_to(ROOT).as_posix()
        for test in sorted(TESTS.rglob("test_*.py"))
        if "trt_stub" not in test.parts
        and test.relative_to(ROOT).as_posix() not in NOT_A_MODULE
        and _module_of(test) is None
    ]
    assert not orphans, "test files that mirror no module of trtq/ (move them, or list why):\n" + "\n".join(
        orphans
    )


def test_every_test_folder_is_a_package():
    folders = {t.parent for t in TESTS.rglob("test_*.py")}
    assert all((f / "__init__.py").is_file() for f in folders), [
        str(f) for f in folders if not (f / "__init__.py").is_file()
    ]


def test_the_rules_themselves():
    assert _test_file(PACKAGE / "cli" / "_options.py") == TESTS / "cli" / "test_options.py"
    assert _test_file(PACKAGE / "engines" / "__init__.py") == TESTS / "engines" / "test_init.py"
    assert _test_file(PACKAGE / "report.py") == TESTS / "test_report.py"
    assert _defines_behaviour(PACKAGE / "cli" / "__init__.py") and not _defines_behaviour(
        PACKAGE / "metrics" / "__init__.py"
    )
    assert _module_of(TESTS / "engines" / "test_compat_contract.py") == PACKAGE / "engines" / "compat.py"
    assert _module_of(TESTS / "placement" / "test_plan_modelopt.py") == PACKAGE / "placement" / "plan.py"
    assert _module_of(TESTS / "cli" / "test_common.py") == PACKAGE / "cli" / "_common.py"
    assert _module_of(TESTS / "test_nothing_here.py") is None
