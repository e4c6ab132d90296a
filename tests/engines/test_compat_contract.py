"""Contract tests: every TensorRT name trtq touches exists in every TensorRT it may run on.

The REAL TensorRT Python bindings (10.3 as on JetPack 6, 10.13, 11.4; wheels from PyPI) are imported in
a subprocess against stub libraries (tests/trt_stub/). These tests prove names and call signatures, and
how trtq's version detection reads each version. They prove nothing about what TensorRT does when it
builds or runs an engine: no engine is built here. scripts/gpu_smoke.sh is the behaviour check.

The list of names comes from trtq's own source (tests/trt_stub/scan.py), so it cannot drift from the code.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import trtq
from tests.trt_stub import bindings
from tests.trt_stub.scan import scan
from trtq.engines import compat

PACKAGE = Path(trtq.__file__).parent
STUB = Path(__file__).parents[1] / "trt_stub"
VERSIONS = list(bindings.VERSIONS)


def _v(version: str) -> tuple[int, int]:
    major, minor = version.split(".")[:2]
    return int(major), int(minor)


@pytest.fixture(scope="module")
def scanned():
    return scan(PACKAGE)


def _request(scanned) -> dict:
    names = sorted({u.name for u in scanned.uses})
    # names behind tables compat indexes with a variable
    names += [f"HardwareCompatibilityLevel.{m}" for m in compat._HW_LEVELS.values()]
    names += list(compat._CALIBRATOR_CLASSES.values())
    names += list(compat.VERSION_SPECIFIC)
    names += sorted(_fake_names())
    calls = {}
    for u in scanned.uses:
        if u.call is not None:
            calls[f"{u.name}|{u.call[0]}|{','.join(u.call[1])}"] = [u.name, u.call[0], list(u.call[1])]
    return {"names": sorted(set(names)), "calls": calls}


def _fake_names() -> set[str]:
    """Every TensorRT name the unit tests' fake module defines (it must not invent API)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("fake_tensorrt_for_scan", STUB / "fake_tensorrt.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return set(mod.DEFINED_NAMES)


@pytest.fixture(scope="module")
def answers(request, scanned, tmp_path_factory):
    # pytest's cache keeps the downloaded wheels between runs; without it (-p no:cacheprovider) use a temp dir
    cache_cfg = getattr(request.config, "cache", None)
    cache = Path(cache_cfg.mkdir("trt-bindings")) if cache_cfg else tmp_path_factory.mktemp("trt-bindings")
    req = _request(scanned)
    out = {}
    for version in VERSIONS:
        try:
            env = bindings.prepare(cache, version)
        except bindings.Unavailable as e:
            out[version] = {"unavailable": str(e)}
            continue
        out[version] = bindings.run_probe(env, req)
    return out


def _answer(answers, version):
    a = answers[version]
    if "unavailable" in a:
        pytest.skip(f"real TensorRT {version} bindings unavailable here: {a['unavailable']}")
    return a


# --- the scan itself --------------------------------------------------------------------------------
def test_scan_finds_the_engine_code_names(scanned):
    """The scan must see the build recipe; if it finds nothing, the contract below would prove nothing."""
    names = {u.name for u in scanned.uses}
    for expected in (
        "Builder",
        "OnnxParser",
        "Logger.WARNING",
        "ProfilingVerbosity.DETAILED",
        "MemoryPoolType.WORKSPACE",
        "IBuilderConfig.set_timing_cache",
        "IBuilderConfig.create_timing_cache",
        "Builder.build_serialized_network",
        "IOptimizationProfile.set_shape",
        "OnnxParser.parse_from_file",
        "ParserError.node_name",
        "IExecutionContext.execute_async_v3",
        "IExecutionContext.set_tensor_address",
        "EngineInspector.get_engine_information",
        "LayerInformationFormat.JSON",
        "BuilderFlag.FP16",  # read through _optional in compat
        "ICudaEngine.device_memory_size_v2",
    ):
        assert expected in names, f"scan did not find {expected}"
    assert len(names) > 40


def test_scan_reads_the_tensorrt_runner(scanned):
    """The runner lives outside trtq/engines; its TensorRT object attributes must be scanned too."""
    runner = {u.name for u in scanned.uses if u.file == "trtq/runners/tensorrt.py"}
    for expected in (
        "IExecutionContext.execute_async_v3",
        "IExecutionContext.set_input_shape",
        "IExecutionContext.set_tensor_address",
        "ICudaEngine.create_execution_context",
    ):
        assert expected in runner, f"scan did not find {expected} in trtq/runners/tensorrt.py"


def test_only_compat_imports_tensorrt(scanned):
    assert scanned.imports == ["trtq/engines/compat.py:" + scanned.imports[0].split(":")[1]], scanned.imports
    assert len(scanned.imports) == 1


def test_version_specific_names_are_touched_only_in_compat(scanned):
    specific = set(compat.VERSION_SPECIFIC)
    outside = [
        f"{u.name} at {u.file}:{u.line}"
        for u in scanned.uses
        if u.name in specific and "compat.py" not in u.file
    ]
    assert not outside, (
        "version-specific TensorRT names must be read through trtq.engines.compat: " + ", ".join(outside)
    )


def test_non_literal_optional_reads_are_the_table_driven_ones(scanned):
    """compat reads calibrator classes and hardware levels by table; the tables are checked below."""
    assert sorted(scanned.dynamic_optional) == [
        "trtq/engines/compat.py:hardware_compat_level",
        "trtq/engines/compat.py:legacy_calibrator_base",
    ]


# --- against the real bindings ----------------------------------------------------------------------
@pytest.mark.parametrize("version", VERSIONS)
def test_every_touched_name_exists(answers, scanned, version):
    a = _answer(answers, version)
    assert a["version"] == version
    specific = set(compat.VERSION_SPECIFIC)
    missing = sorted(
        {
            f"{u.name} ({u.file}:{u.line})"
            for u in scanned.uses
            if u.name not in specific and not a["names"][u.name]
        }
    )
    assert not missing, f"TensorRT {version} lacks names trtq uses unguarded: {missing}"


@pytest.mark.parametrize("version", VERSIONS)
def test_version_specific_table_matches_the_bindings(answers, version):
    a = _answer(answers, version)
    v = _v(version)
    wrong = []
    for name, (since, until) in compat.VERSION_SPECIFIC.items():
        expected = (since is None or v >= since) and (until is None or v < until)
        if a["names"][name] != expected:
            wrong.append(f"{name}: table says {'present' if expected else 'absent'}, bindings say otherwise")
    assert not wrong, wrong


@pytest.mark.parametrize("version", VERSIONS)
def test_table_driven_names(answers, version):
    a = _answer(answers, version)
    specific = set(compat.VERSION_SPECIFIC)
    for member in compat._HW_LEVELS.values():
        name = f"HardwareCompatibilityLevel.{member}"
        assert name in specific or a["names"][name], name
    for cls in compat._CALIBRATOR_CLASSES.values():
        assert cls in specific, f"{cls} must be declared version-specific"


@pytest.mark.parametrize("version", VERSIONS)
def test_calls_match_real_signatures(answers, version):
    a = _answer(answers, version)
    bad = []
    for key, ok in a["calls"].items():
        name = key.split("|")[0]
        if name in compat.VERSION_SPECIFIC and not a["names"][name]:
            continue
        if ok is False:
            bad.append(key)
    assert not bad, f"calls whose positional count/keywords no documented signature accepts: {bad}"
    checked = sum(1 for ok in a["calls"].values() if ok is True)
    assert checked >= 20, f"only {checked} calls could be checked against signatures"


@pytest.mark.parametrize("version", VERSIONS)
def test_fake_tensorrt_defines_only_real_names(answers, version):
    """The unit tests' fake module may only define names that exist in some real version."""
    present = {
        n for v in VERSIONS if "unavailable" not in answers[v] for n, ok in answers[v]["names"].items() if ok
    }
    if not present:
        pytest.skip("no real bindings available")
    invented = sorted(n for n in _fake_names() if n not in present)
    assert not invented, f"fake_tensorrt defines names no real TensorRT has: {invented}"


# --- compat's feature detection, run against each version ------------------------------------------
def test_compat_on_tensorrt_11(answers):
    c = _answer(answers, "11.4.0.106")["compat"]
    assert "crash" not in c, c.get("crash")
    assert c["version"] == [11, 4, 0]
    assert c["status"][0] is True and "strongly typed" in c["status"][1]
    # without a GPU (this machine): the status says so, and the real Builder's nullptr is one line
    assert c["status_here"][0] is False and "no NVIDIA driver was found" in c["status_here"][1]
    assert c["builder_nullptr"]["error"] == "TensorRTUnavailable"
    assert "could not create a builder (TypeError" in c["builder_nullptr"]["message"]
    assert "nullptr" in c["builder_nullptr"]["message"]
    assert c["has_weak_typing"] is False
    assert c["has_calibrators"] is False
    assert c["prefers_strong_typing"] is True
    assert c["network_flags_strong"] == {"value": 0}  # STRONGLY_TYPED is deprecated and ignored on 11
    assert c["network_flags_weak"]["error"] == "UsageError"
    assert "not available on TensorRT 11.4" in c["network_flags_weak"]["message"]
    assert c["weak_precision"]["error"] == "UsageError" and c["weak_precision_flags"] == []
    assert c["calibrator_EntropyCalibration2"] == {
        "error": "UsageError",
        "message": "INT8 calibrator classes are not available on TensorRT 11.4; trtq uses explicit Q/DQ (model.trt.onnx)",
    }
    assert c["set_calibrator"]["error"] == "UsageError"
    assert c["cache_calibrator"]["error"] == "UsageError"
    assert c["hw_same_cc"] == {"value": "SAME_COMPUTE_CAPABILITY"}
    assert c["hw_bogus"]["error"] == "UsageError"
    assert c["graph_choice"] == ["model.trt.onnx", True]
    assert c["graph_choice_weak"]["error"] == "UsageError"


def test_compat_on_tensorrt_10_13(answers):
    c = _answer(answers, "10.13.3.9")["compat"]
    assert "crash" not in c, c.get("crash")
    assert c["has_weak_typing"] is True and c["has_calibrators"] is True
    assert c["prefers_strong_typing"] is True  # 10.12+
    assert c["network_flags_strong"]["value"] == 1 << 1  # STRONGLY_TYPED is bit 1 on 10.x
    assert c["network_flags_weak"] == {"value": 0}
    assert c["weak_precision"] == {"value": ["INT8", "FP16"]} and c["weak_precision_flags"] == [
        "INT8",
        "FP16",
    ]
    assert c["calibrator_EntropyCalibration2"] == {"value": "IInt8EntropyCalibrator2"}
    assert c["calibrator_MinMaxCalibration"] == {"value": "IInt8MinMaxCalibrator"}
    assert c["calibrator_LegacyCalibration"]["error"] == "UsageError"
    assert c["set_calibrator_state"] == ["calibrator", "profile"]
    cal = c["cache_calibrator"]
    assert cal["base"] == "IInt8EntropyCalibrator2" and cal["overrides_exist_in_base"] is True
    assert cal["cache_header"] == "TRT-101303-EntropyCalibration2"  # retargeted to the running version
    assert cal["batch"] is None
    assert c["graph_choice"] == ["model.trt.onnx", True]
    assert c["graph_choice_weak"] == {"value": "model.int8.onnx"}


def test_compat_on_tensorrt_10_3(answers):
    c = _answer(answers, "10.3.0")["compat"]
    assert "crash" not in c, c.get("crash")
    assert c["has_weak_typing"] is True
    assert c["prefers_strong_typing"] is False  # before 10.12: weakly typed with INT8 + FP16 flags
    assert "weakly typed" in c["status"][1]
    assert c["graph_choice"] == ["model.int8.onnx", False]
    assert c["hw_ampere_plus"] == {"value": "AMPERE_PLUS"}
    assert c["hw_same_cc"]["error"] == "UsageError"  # added in 10.4
    assert c["cache_calibrator"]["cache_header"] == "TRT-100300-EntropyCalibration2"


def test_api_dump_fallback_agrees_with_the_scan(scanned):
    """Without pip, the recorded API dumps (10.13, 11.4) still check class-level names."""
    missing = []
    for dump in sorted(STUB.glob("api-*.json")):
        api = json.loads(dump.read_text())
        version = api["__version__"]
        classes = api["classes"]
        for u in scanned.uses:
            if u.name in compat.VERSION_SPECIFIC:
                continue
            parts = u.name.split(".")
            if parts[0] in classes:
                info = classes[parts[0]]
                if (
                    len(parts) > 1
                    and parts[1] not in info.get("attrs", {})
                    and parts[1] not in info.get("members", [])
                ):
                    missing.append(f"{version}: {u.name}")
            elif parts[0] not in api["module"] and parts[0] != "__version__":
                missing.append(f"{version}: {u.name}")
    assert not missing, missing
