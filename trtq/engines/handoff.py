"""Hand-off to NVIDIA's own tools: the `trtexec` command that builds the engine trtq would build, per TensorRT
version, and the `polygraphy run` commands that compare that engine with the FP32 `model.onnx`.

The commands name the run folder's files (run them from that folder) and carry the optimisation profile, the
workspace limit, the timing cache, the optimisation level and the compatibility options of the run:

- TensorRT 11: strongly typed only; `model.trt.onnx` (INT8 where Q/DQ say, FP16 elsewhere); no precision flags
  (TensorRT 11 removed `--int8`, `--fp16`, `--best` and `--calib`; `--stronglyTyped` is a no-op there).
- TensorRT 10.12 and later 10.x: the same graph with `--stronglyTyped`.
- TensorRT 10.0 to 10.11: weakly typed; `model.int8.onnx` with `--int8 --fp16` (a Q/DQ graph needs `--int8`).

Every flag is one `trtexec --help` lists for that version (`tests/data/trtexec/`, read from NVIDIA's sources, and
`tests/engines/test_handoff.py` parses every command printed against them). Nothing here imports TensorRT.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from trtq import artifacts as A
from trtq.engines.options import EngineOptions, ShapeRange

__all__ = ["HandoffCommand", "TRTEXEC_TARGETS", "trtexec_command", "polygraphy_commands", "handoff_commands"]

#: (key, TensorRT versions, how the build is typed): the TensorRT lines a trtexec command is written for.
TRTEXEC_TARGETS: tuple[tuple[str, str, str], ...] = (
    ("trt11", "TensorRT 11.x", "strongly typed, the only mode of TensorRT 11"),
    ("trt10_strong", "TensorRT 10.12 and later 10.x", "strongly typed with --stronglyTyped"),
    ("trt10_weak", "TensorRT 10.0 to 10.11", "weakly typed with the INT8 and FP16 builder flags"),
)

_HW_TRTEXEC = {"ampere_plus": "ampere+", "same_compute_capability": "sameComputeCapability"}
_PLAIN_NAME = re.compile(r"^[A-Za-z0-9_.\-/]+$")
INPUTS_JSON = "polygraphy_inputs.json"
FP32_OUTPUTS_JSON = "polygraphy_fp32_outputs.json"


@dataclass(frozen=True)
class HandoffCommand:
    """One command to run on the GPU machine, from the run folder.

    Attributes:
        tool: "trtexec" or "polygraphy".
        target: which TensorRT it is for (a `TRTEXEC_TARGETS` key; "any" for the FP32 reference step).
        tensorrt: the TensorRT versions, for people.
        purpose: what it does.
        argv: the command as arguments (`argv[0]` is the tool).
    """

    tool: str
    target: str
    tensorrt: str
    purpose: str
    argv: tuple[str, ...] = field(default_factory=tuple)

    @property
    def line(self) -> str:
        """The command as one shell line."""
        return shlex.join(self.argv)

    def to_json(self) -> dict[str, Any]:
        return {
            "tool": self.tool,
            "target": self.target,
            "tensorrt": self.tensorrt,
            "purpose": self.purpose,
            "command": self.line,
        }


def _shape(shape: Sequence[int]) -> str:
    return "x".join(str(int(d)) for d in shape)


def _name(name: str) -> str:
    # trtexec splits shape specs at ':' and ','; names with other characters are wrapped in single quotes
    return name if _PLAIN_NAME.match(name) else f"'{name}'"


def _shape_spec(shape_ranges: Mapping[str, ShapeRange], which: int) -> str:
    return ",".join(f"{_name(n)}:{_shape(r[which])}" for n, r in shape_ranges.items())


def trtexec_command(
    target: str, shape_ranges: Mapping[str, ShapeRange], options: EngineOptions, *, plan: str = A.PLAN
) -> HandoffCommand:
    """The trtexec command building the run's engine on one TensorRT line (a `TRTEXEC_TARGETS` key)."""
    key, versions, typing = next(t for t in TRTEXEC_TARGETS if t[0] == target)
    graph = A.INT8_ONNX if key == "trt10_weak" else A.TYPED_ONNX
    argv = ["trtexec", f"--onnx={graph}", f"--saveEngine={plan}"]
    if any(r[0] != r[2] for r in shape_ranges.values()):  # a dynamic profile; static graphs need none
        argv += [f"--minShapes={_shape_spec(shape_ranges, 0)}", f"--optShapes={_shape_spec(shape_ranges, 1)}",
                 f"--maxShapes={_shape_spec(shape_ranges, 2)}"]  # fmt: skip
    if key == "trt10_strong":
        argv.append("--stronglyTyped")
    if key == "trt10_weak":
        argv += {"int8": ["--int8", "--fp16"], "fp16": ["--fp16"], "fp32": []}[options.precision]
    if options.workspace_gb is not None:
        argv.append(f"--memPoolSize=workspace:{max(1, int(options.workspace_gb * 1024))}M")
    if options.timing_cache is not None:
        argv.append(f"--timingCacheFile={options.timing_cache}")
    if options.opt_level != 3:
        argv.append(f"--builderOptimizationLevel={options.opt_level}")
    if options.hardware_compat:
        argv.append(f"--hardwareCompatibilityLevel={_HW_TRTEXEC[options.hardware_compat]}")
    if options.version_compat:
        argv.append("--versionCompatible")
    argv.append("--profilingVerbosity=detailed")
    return HandoffCommand("trtexec", key, versions, f"build {plan} from {graph}, {typing}", tuple(argv))


def polygraphy_commands(
    shape_ranges: Mapping[str, ShapeRange],
    *,
    rtol: float,
    atol: float,
    check_error_stat: str,
    plan: str = A.PLAN,
) -> list[HandoffCommand]:
    """Run `model.onnx` (FP32, ONNX Runtime) on saved inputs, then the engine on the same inputs against its outputs.

    The inputs are Polygraphy's generated data at the shape_ranges's opt shapes; the tolerances are the run's
    validation tolerances (`--rtol`, `--atol`, `--check-error-stat`).
    """
    shapes = [f"{n}:[{','.join(str(int(d)) for d in r[1])}]" for n, r in shape_ranges.items()]
    reference = (
        "polygraphy", "run", A.MODEL_ONNX, "--onnxrt", "--input-shapes", *shapes,
        "--save-inputs", INPUTS_JSON, "--save-outputs", FP32_OUTPUTS_JSON,
    )  # fmt: skip
    compare = (
        "polygraphy", "run", plan, "--model-type", "engine", "--trt",
        "--load-inputs", INPUTS_JSON, "--load-outputs", FP32_OUTPUTS_JSON,
        "--rtol", f"{rtol:g}", "--atol", f"{atol:g}", "--check-error-stat", check_error_stat,
    )  # fmt: skip
    return [
        HandoffCommand("polygraphy", "any", "any (ONNX Runtime)",
                       f"FP32 reference: run {A.MODEL_ONNX} on generated inputs, save inputs and outputs", reference),
        HandoffCommand("polygraphy", "any", "the TensorRT that built the engine",
                       f"compare {plan} with the FP32 outputs on the same inputs", compare),
    ]  # fmt: skip


def handoff_commands(
    shape_ranges: Mapping[str, ShapeRange],
    options: EngineOptions,
    *,
    rtol: float = 5e-2,
    atol: float = 5e-2,
    check_error_stat: str = "median",
    plan: str = A.PLAN,
) -> list[HandoffCommand]:
    """Every hand-off command of a run: trtexec per TensorRT line, then the Polygraphy comparison."""
    cmds = [trtexec_command(key, shape_ranges, options, plan=plan) for key, _, _ in TRTEXEC_TARGETS]
    return cmds + polygraphy_commands(
        shape_ranges, rtol=rtol, atol=atol, check_error_stat=check_error_stat, plan=plan
    )
