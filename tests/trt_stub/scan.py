"""Find every TensorRT name trtq's code touches, by reading its source (AST), so the list cannot drift.

Three kinds of use are collected:

* attribute chains on the module, always imported as `trt`: `trt.BuilderFlag.FP16` -> "BuilderFlag.FP16";
* attributes of TensorRT objects in trtq/engines and trtq/runners/tensorrt.py (`TENSORRT_CODE`),
  recognised by the variable names that code uses for them (a naming convention it keeps):
  `config.set_flag` -> "IBuilderConfig.set_flag";
* version-specific reads through `compat._optional(owner, "NAME")`.

For calls, the number of positional arguments and the keyword names are kept, so the contract test can
check them against the real bindings' signatures.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass, field
from pathlib import Path

#: The code that holds TensorRT objects (paths relative to the package's parent); object attributes are
#: collected only there. A folder ends with "/".
TENSORRT_CODE = ("trtq/engines/", "trtq/runners/tensorrt.py")

#: Variable (or attribute) name in TENSORRT_CODE -> the TensorRT class it holds.
OBJECT_CLASSES = {
    "builder": "Builder",
    "network": "INetworkDefinition",
    "parser": "OnnxParser",
    "error": "ParserError",
    "config": "IBuilderConfig",
    "profile": "IOptimizationProfile",
    "timing_cache": "ITimingCache",
    "runtime": "Runtime",
    "engine": "ICudaEngine",
    "context": "IExecutionContext",
    "inspector": "EngineInspector",
    "logger": "Logger",
    "tensor": "ITensor",
}


@dataclass
class Use:
    """One use of a TensorRT name."""

    name: str  # "BuilderFlag.FP16", "IBuilderConfig.set_flag", "Builder"
    file: str
    line: int
    optional: bool = False  # read through compat._optional (version-specific)
    call: tuple[int, tuple[str, ...]] | None = None  # (positional args, keyword names) when called


@dataclass
class ScanResult:
    uses: list[Use] = field(default_factory=list)
    dynamic_optional: list[str] = field(default_factory=list)  # "file:function" with a non-literal name
    imports: list[str] = field(default_factory=list)  # "file:line" importing tensorrt


def _chain(node: ast.AST) -> list[str] | None:
    """["trt", "BuilderFlag", "FP16"] for trt.BuilderFlag.FP16; None when not rooted at a Name."""
    parts: list[str] = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name):
        parts.append(node.id)
        return parts[::-1]
    return None


def _owner(node: ast.AST) -> str | None:
    """The TensorRT owner an expression denotes: "" for the module, "BuilderFlag" for trt.BuilderFlag,
    "IBuilderConfig" for a variable `config` (or `self.config`), else None."""
    chain = _chain(node)
    if chain is None:
        return None
    if chain[0] == "trt":
        return ".".join(chain[1:])
    last = chain[-1].lstrip("_")
    if len(chain) <= 2 and last in OBJECT_CLASSES:
        return OBJECT_CLASSES[last]
    return None


class _Visitor(ast.NodeVisitor):
    def __init__(self, file: str, objects: bool) -> None:
        self.file = file
        self.objects = objects
        self.result = ScanResult()
        self.func = "<module>"
        self._called: dict[int, tuple[int, tuple[str, ...]]] = {}

    def visit_FunctionDef(self, node: ast.FunctionDef) -> None:
        prev, self.func = self.func, node.name
        self.generic_visit(node)
        self.func = prev

    visit_AsyncFunctionDef = visit_FunctionDef  # type: ignore[assignment]

    def visit_Import(self, node: ast.Import) -> None:
        if any(a.name.split(".")[0] == "tensorrt" for a in node.names):
            self.result.imports.append(f"{self.file}:{node.lineno}")

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        if (node.module or "").split(".")[0] == "tensorrt":
            self.result.imports.append(f"{self.file}:{node.lineno}")

    def visit_Call(self, node: ast.Call) -> None:
        func = node.func
        sig = (len(node.args), tuple(k.arg for k in node.keywords if k.arg))
        # importlib.import_module("tensorrt")
        if _chain(func) in (["importlib", "import_module"], ["import_module"]) and node.args:
            arg = node.args[0]
            if isinstance(arg, ast.Constant) and str(arg.value).split(".")[0] == "tensorrt":
                self.result.imports.append(f"{self.file}:{node.lineno}")
        # compat._optional(owner, "NAME")
        if isinstance(func, ast.Name) and func.id == "_optional" or _chain(func) == ["compat", "_optional"]:
            if len(node.args) == 2:
                owner = _owner(node.args[0])
                name = node.args[1]
                if isinstance(name, ast.Constant) and isinstance(name.value, str):
                    if owner is not None:
                        full = f"{owner}.{name.value}" if owner else name.value
                        self.result.uses.append(Use(full, self.file, node.lineno, optional=True))
                else:
                    self.result.dynamic_optional.append(f"{self.file}:{self.func}")
        if isinstance(func, ast.Attribute):
            self._called[id(func)] = sig
        elif isinstance(func, ast.Name):
            pass
        self.generic_visit(node)

    def visit_Attribute(self, node: ast.Attribute) -> None:
        owner = _owner(node.value)
        chain = _chain(node)
        call = self._called.get(id(node))
        if chain is not None and chain[0] == "trt":
            self.result.uses.append(Use(".".join(chain[1:]), self.file, node.lineno, call=call))
            return  # the whole chain is recorded; do not record its prefixes again
        if self.objects and owner:
            self.result.uses.append(Use(f"{owner}.{node.attr}", self.file, node.lineno, call=call))
        self.generic_visit(node)


def holds_tensorrt_objects(rel: str) -> bool:
    """Whether the module at `rel` ("trtq/engines/build.py") is scanned for TensorRT object attributes."""
    return any(rel.startswith(p) if p.endswith("/") else rel == p for p in TENSORRT_CODE)


def scan(package: Path) -> ScanResult:
    """Scan every module of `package` (object attributes only in `TENSORRT_CODE`)."""
    out = ScanResult()
    for path in sorted(package.rglob("*.py")):
        rel = path.relative_to(package.parent).as_posix()
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=rel)
        v = _Visitor(rel, objects=holds_tensorrt_objects(rel))
        # calls must be registered before their func attribute is visited: visit calls first
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
                v._called[id(node.func)] = (len(node.args), tuple(k.arg for k in node.keywords if k.arg))
        v.visit(tree)
        out.uses += v.result.uses
        out.dynamic_optional += v.result.dynamic_optional
        out.imports += v.result.imports
    return out
