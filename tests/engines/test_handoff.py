"""The trtexec and Polygraphy hand-off: every printed command parses against that TensorRT version's real options."""

from __future__ import annotations

import shlex
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.engines.trtexec_options import VERSIONS, parse_trtexec, trtexec_options
from trtq.engines import EngineOptions
from trtq.engines.handoff import TRTEXEC_TARGETS, handoff_commands

PROFILE = {"input": ((1, 3, 224, 224), (8, 3, 224, 224), (32, 3, 224, 224))}
OPTIONS = [
    EngineOptions(),
    EngineOptions(
        workspace_gb=4,
        timing_cache=Path("timing.cache"),
        opt_level=5,
        version_compat=True,
        hardware_compat="ampere_plus",
    ),  # fmt: skip
    EngineOptions(precision="fp16", batch=(4, 4, 4)),
]


def test_option_lists_are_the_real_ones():
    """Spot checks of the stored lists against NVIDIA's documented changes (11 removed the precision flags)."""
    removed_in_11 = {"--int8", "--fp16", "--best", "--calib"}
    for version, target in VERSIONS.items():
        names = trtexec_options(version)
        assert {"--onnx", "--saveEngine", "--minShapes", "--memPoolSize", "--stronglyTyped"} <= set(names)
        if target == "trt11":
            assert not removed_in_11 & set(names)
        else:
            assert removed_in_11 <= set(names)
        assert names["--onnx"] is True and names["--stronglyTyped"] is False  # takes a value / is a switch


@pytest.mark.parametrize("options", OPTIONS, ids=["default", "all-options", "fp16-static"])
def test_every_trtexec_command_parses_for_its_versions(options):
    cmds = [c for c in handoff_commands(PROFILE, options) if c.tool == "trtexec"]
    assert [c.target for c in cmds] == [t[0] for t in TRTEXEC_TARGETS]
    for cmd in cmds:
        versions = [v for v, target in VERSIONS.items() if target == cmd.target]
        assert versions
        for v in versions:
            parsed = parse_trtexec(cmd.line, v)
            assert parsed["--saveEngine"] == "model.plan"
            if options.batch[0] != options.batch[2]:
                assert (
                    parsed["--minShapes"] == "input:1x3x224x224"
                    and parsed["--maxShapes"] == "input:32x3x224x224"
                )


def test_each_line_builds_the_right_graph_with_the_right_typing():
    by = {c.target: parse_trtexec(c.line, v) for c in handoff_commands(PROFILE, OPTIONS[1]) if c.tool == "trtexec"
          for v, t in VERSIONS.items() if t == c.target}  # fmt: skip
    assert by["trt11"]["--onnx"] == "model.trt.onnx" and "--stronglyTyped" not in by["trt11"]
    assert by["trt10_strong"]["--onnx"] == "model.trt.onnx" and "--stronglyTyped" in by["trt10_strong"]
    weak = by["trt10_weak"]
    assert weak["--onnx"] == "model.int8.onnx" and "--int8" in weak and "--fp16" in weak
    assert by["trt11"]["--memPoolSize"] == "workspace:4096M"
    assert (
        by["trt11"]["--builderOptimizationLevel"] == "5"
        and by["trt11"]["--hardwareCompatibilityLevel"] == "ampere+"
    )


def test_the_parser_refuses_flags_a_version_removed():
    """The check bites: TensorRT 10's weakly typed command is not a TensorRT 11 command."""
    weak = next(c for c in handoff_commands(PROFILE, EngineOptions()) if c.target == "trt10_weak")
    with pytest.raises(ValueError, match="TensorRT 11.1's trtexec has no option --int8"):
        parse_trtexec(weak.line, "11.1")
    with pytest.raises(ValueError, match="takes a value"):
        parse_trtexec("trtexec --onnx", "10.16")


def test_names_with_separators_are_quoted():
    profile = {"input:0": ((1, 4), (2, 4), (3, 4)), "ids": ((1, 4), (2, 4), (3, 4))}
    cmd = next(c for c in handoff_commands(profile, EngineOptions()) if c.target == "trt11")
    parsed = parse_trtexec(cmd.line, "11.1")
    assert parsed["--minShapes"] == "'input:0':1x4,ids:1x4"


def _polygraphy_parser():
    import argparse

    from polygraphy.tools.registry import TOOL_REGISTRY

    parser = argparse.ArgumentParser(prog="polygraphy")
    sub = parser.add_subparsers(dest="tools")
    for tool in TOOL_REGISTRY:
        tool.setup_parser(sub)
    return parser


def test_polygraphy_commands_parse_with_polygraphys_own_parser():
    parser = _polygraphy_parser()
    cmds = [c for c in handoff_commands(PROFILE, EngineOptions()) if c.tool == "polygraphy"]
    assert len(cmds) == 2
    for cmd in cmds:
        argv = shlex.split(cmd.line)
        assert argv[0] == "polygraphy"
        args, unknown = parser.parse_known_args(argv[1:])
        assert unknown == [], cmd.line
    assert "--trt" in cmds[1].argv and "--load-outputs" in cmds[1].argv


def test_polygraphy_reference_step_runs_here(tmp_path):
    """The ONNX Runtime half of the check runs on any machine: it must save the inputs and outputs it promises."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    w = numpy_helper.from_array(np.ones((4, 3, 1, 1), np.float32), "w")
    graph = helper.make_graph(
        [helper.make_node("Conv", ["input", "w"], ["output"])], "g",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch", 3, 4, 4])],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, ["batch", 4, 4, 4])], [w],
    )  # fmt: skip
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), tmp_path / "model.onnx")
    profile = {"input": ((1, 3, 4, 4), (2, 3, 4, 4), (4, 3, 4, 4))}
    first = next(c for c in handoff_commands(profile, EngineOptions()) if c.tool == "polygraphy")
    exe = Path(sys.executable).parent / "polygraphy"
    done = subprocess.run(
        [str(exe), *first.argv[1:]], cwd=tmp_path, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert (tmp_path / "polygraphy_inputs.json").is_file() and (
        tmp_path / "polygraphy_fp32_outputs.json"
    ).is_file()
