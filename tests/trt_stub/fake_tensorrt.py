"""A recording stand-in for the `tensorrt` module, to test trtq's build recipe on a CPU.

It mimics the shape of TensorRT 10.x (`make_fake("10.3.0")`, `make_fake("10.13.3")`) or 11.x
(`make_fake("11.4.0")`): 11.x lacks the weak-typing flags and calibrator classes, as the real 11.x does.
It only records what trtq asks for; it builds nothing. Every name it defines is checked against the
real bindings by tests/engines/test_compat_contract.py (`DEFINED_NAMES`), so it cannot invent API.

The parser reads the real ONNX file (with the onnx package) to learn the inputs, so profiles are
computed from real graphs. The inspector returns whatever JSON the test puts in `fake.INSPECTOR_JSON`.
"""

from __future__ import annotations

import json
import types
from typing import Any

#: Names this fake defines (checked against the real bindings).
DEFINED_NAMES = [
    "Logger", "Logger.WARNING", "Logger.INFO", "Builder", "Builder.create_network",
    "Builder.create_builder_config", "Builder.create_optimization_profile", "Builder.build_serialized_network",
    "INetworkDefinition.num_inputs", "INetworkDefinition.get_input", "ITensor.name", "ITensor.shape",
    "OnnxParser", "OnnxParser.parse", "OnnxParser.parse_from_file", "OnnxParser.num_errors",
    "OnnxParser.get_error", "ParserError.node_name", "ParserError.node", "ParserError.node_operator",
    "ParserError.desc", "IBuilderConfig.set_flag", "IBuilderConfig.set_memory_pool_limit",
    "IBuilderConfig.create_timing_cache", "IBuilderConfig.set_timing_cache", "IBuilderConfig.get_timing_cache",
    "IBuilderConfig.add_optimization_profile", "IBuilderConfig.profiling_verbosity",
    "IBuilderConfig.builder_optimization_level", "IBuilderConfig.hardware_compatibility_level",
    "IBuilderConfig.int8_calibrator", "IBuilderConfig.set_calibration_profile", "ITimingCache.serialize",
    "IOptimizationProfile.set_shape", "BuilderFlag.FP16", "BuilderFlag.INT8", "BuilderFlag.VERSION_COMPATIBLE",
    "NetworkDefinitionCreationFlag.STRONGLY_TYPED", "ProfilingVerbosity.DETAILED", "MemoryPoolType.WORKSPACE",
    "HardwareCompatibilityLevel.NONE", "HardwareCompatibilityLevel.AMPERE_PLUS",
    "HardwareCompatibilityLevel.SAME_COMPUTE_CAPABILITY", "IInt8EntropyCalibrator2", "IInt8MinMaxCalibrator",
    "IInt8EntropyCalibrator", "init_libnvinfer_plugins", "Runtime", "Runtime.deserialize_cuda_engine",
    "Runtime.engine_host_code_allowed", "ICudaEngine.num_io_tensors", "ICudaEngine.get_tensor_name",
    "ICudaEngine.get_tensor_mode", "ICudaEngine.get_tensor_dtype", "ICudaEngine.get_tensor_shape",
    "ICudaEngine.get_tensor_profile_shape", "ICudaEngine.num_optimization_profiles",
    "ICudaEngine.create_execution_context", "ICudaEngine.create_engine_inspector",
    "IExecutionContext.set_input_shape", "EngineInspector.execution_context",
    "EngineInspector.get_engine_information", "LayerInformationFormat.JSON", "TensorIOMode.INPUT",
    "TensorIOMode.OUTPUT", "DataType.FLOAT", "ILogger", "ILogger.INFO", "ILogger.WARNING", "ILogger.VERBOSE",
    "ILogger.log",
]  # fmt: skip


class _Member:
    def __init__(self, name: str, value: int) -> None:
        self.name, self.value = name, value

    def __int__(self) -> int:
        return self.value

    def __repr__(self) -> str:
        return self.name


def _enum(name: str, members: list[str]) -> type:
    return type(name, (), {m: _Member(m, i) for i, m in enumerate(members)})


class FakeState:
    """What the fake recorded and how it should behave."""

    def __init__(self) -> None:
        self.log: list[tuple] = []
        self.parse_errors: list[tuple[str, str, str]] = []
        self.build_fails = False
        self.inspector_json: dict[str, Any] = {"Layers": [], "Bindings": []}
        self.outputs: list[tuple[str, list[int]]] = [("logits", [-1, 10])]
        self.mismatch_prefix = b"OTHER"
        self.builder_nullptr = False  # trt.Builder raises as it does without a usable GPU
        self.log_messages: list[tuple[int, str]] = [(2, "a builder warning"), (3, "a builder note")]


def make_fake(version: str = "11.4.0") -> types.ModuleType:
    """A fake `tensorrt` module of `version` with a `.state` (FakeState)."""
    major = int(version.split(".")[0])
    minor = int(version.split(".")[1])
    weak = major < 11
    st = FakeState()
    mod = types.ModuleType("tensorrt")
    mod.__version__ = version
    mod.state = st

    class Logger:
        WARNING = _Member("WARNING", 2)
        INFO = _Member("INFO", 3)

        def __init__(self, severity: Any = None) -> None:
            self.severity = severity

    flags = ["VERSION_COMPATIBLE", "TF32"] + (["FP16", "INT8"] if weak else [])
    mod.BuilderFlag = _enum("BuilderFlag", flags)
    mod.NetworkDefinitionCreationFlag = type(
        "NetworkDefinitionCreationFlag",
        (),
        {
            "STRONGLY_TYPED": _Member("STRONGLY_TYPED", 1),
            **({"EXPLICIT_BATCH": _Member("EXPLICIT_BATCH", 0)} if weak else {}),
        },
    )
    mod.ProfilingVerbosity = _enum("ProfilingVerbosity", ["LAYER_NAMES_ONLY", "NONE", "DETAILED"])
    mod.MemoryPoolType = _enum("MemoryPoolType", ["WORKSPACE"])
    hw = ["NONE", "AMPERE_PLUS"] + (["SAME_COMPUTE_CAPABILITY"] if (major, minor) >= (10, 4) else [])
    mod.HardwareCompatibilityLevel = _enum("HardwareCompatibilityLevel", hw)
    mod.LayerInformationFormat = _enum("LayerInformationFormat", ["ONELINE", "JSON"])
    mod.TensorIOMode = _enum("TensorIOMode", ["NONE", "INPUT", "OUTPUT"])
    mod.DataType = _enum("DataType", ["FLOAT", "HALF", "INT8"])
    mod.Logger = Logger

    class ILogger:
        INTERNAL_ERROR = _Member("INTERNAL_ERROR", 0)
        ERROR = _Member("ERROR", 1)
        WARNING = _Member("WARNING", 2)
        INFO = _Member("INFO", 3)
        VERBOSE = _Member("VERBOSE", 4)

        def __init__(self) -> None:
            pass

        def log(self, severity: Any, msg: str) -> None:  # overridden by subclasses
            pass

    mod.ILogger = ILogger
    mod.init_libnvinfer_plugins = lambda logger, namespace: st.log.append(("init_plugins", namespace)) or True

    class ITensor:
        def __init__(self, name: str, shape: list[int]) -> None:
            self.name, self.shape = name, shape

    class INetworkDefinition:
        def __init__(self, flags: int) -> None:
            self.flags = flags
            self.inputs: list[ITensor] = []

        @property
        def num_inputs(self) -> int:
            return len(self.inputs)

        def get_input(self, i: int) -> ITensor:
            return self.inputs[i]

    class ParserError:
        def __init__(self, node_name: str, op: str, desc: str, index: int) -> None:
            self._n, self._op, self._d, self._i = node_name, op, desc, index

        def node_name(self) -> str:
            return self._n

        def node(self) -> int:
            return self._i

        def node_operator(self) -> str:
            return self._op

        def desc(self) -> str:
            return self._d

    class OnnxParser:
        def __init__(self, network: INetworkDefinition, logger: Logger) -> None:
            self.network = network
            self._errors: list[ParserError] = []

        def _load(self, model: Any) -> bool:
            from trtq.engines.profiles import onnx_input_shapes

            for name, dims in onnx_input_shapes(model).items():
                shape = [d if isinstance(d, int) and d >= 0 else -1 for d in dims]
                self.network.inputs.append(ITensor(name, shape))
            self._errors = [ParserError(n, o, d, i) for i, (n, o, d) in enumerate(st.parse_errors)]
            return not self._errors

        def parse_from_file(self, path: str) -> bool:
            st.log.append(("parse_from_file", path))
            return self._load(path)

        def parse(self, model: bytes, path: str | None = None) -> bool:
            st.log.append(("parse", len(model)))
            return self._load(model)

        @property
        def num_errors(self) -> int:
            return len(self._errors)

        def get_error(self, i: int) -> ParserError:
            return self._errors[i]

    class ITimingCache:
        def __init__(self, data: bytes) -> None:
            self.data = bytes(data)

        def serialize(self) -> bytes:
            return self.data + b"+tactics"

    class IOptimizationProfile:
        def __init__(self) -> None:
            self.shapes: dict[str, tuple] = {}

        def set_shape(self, name: str, mn: Any, opt: Any, mx: Any) -> None:
            self.shapes[name] = (tuple(mn), tuple(opt), tuple(mx))

    class IBuilderConfig:
        def __init__(self) -> None:
            self.flags: list[str] = []
            self.pools: dict[str, int] = {}
            self.profiles: list[IOptimizationProfile] = []
            self.profiling_verbosity = None
            self.builder_optimization_level = 3
            self.hardware_compatibility_level = None
            self._cache: ITimingCache | None = None
            if weak:
                self.int8_calibrator = None
                self.calibration_profile = None

        def set_flag(self, flag: _Member) -> None:
            self.flags.append(flag.name)

        def set_memory_pool_limit(self, pool: _Member, size: int) -> None:
            self.pools[pool.name] = size

        def create_timing_cache(self, data: bytes) -> ITimingCache:
            if bytes(data).startswith(b"CORRUPT"):
                raise RuntimeError("bad cache")
            return ITimingCache(data)

        def set_timing_cache(self, cache: ITimingCache, ignore_mismatch: bool) -> bool:
            if cache.data.startswith(st.mismatch_prefix) and not ignore_mismatch:
                return False
            self._cache = cache
            return True

        def get_timing_cache(self) -> ITimingCache | None:
            return self._cache

        def add_optimization_profile(self, profile: IOptimizationProfile) -> int:
            self.profiles.append(profile)
            return len(self.profiles) - 1

        if weak:

            def set_calibration_profile(self, profile: IOptimizationProfile) -> None:
                self.calibration_profile = profile

    class Builder:
        def __init__(self, logger: Logger) -> None:
            if st.builder_nullptr:
                raise TypeError("pybind11::init(): factory function returned nullptr")
            self.logger = logger

        def create_network(self, flags: int = 0) -> INetworkDefinition:
            st.log.append(("create_network", flags))
            st.network = INetworkDefinition(flags)
            return st.network

        def create_builder_config(self) -> IBuilderConfig:
            st.config = IBuilderConfig()
            return st.config

        def create_optimization_profile(self) -> IOptimizationProfile:
            return IOptimizationProfile()

        def build_serialized_network(
            self, network: INetworkDefinition, config: IBuilderConfig
        ) -> bytes | None:
            st.log.append(("build", network.flags, list(config.flags)))
            if isinstance(self.logger, ILogger):
                for level, msg in st.log_messages:
                    self.logger.log(
                        _Member(["INTERNAL_ERROR", "ERROR", "WARNING", "INFO", "VERBOSE"][level], level), msg
                    )
            if st.build_fails:
                return None
            return b"PLAN:" + json.dumps({"inputs": [[t.name, t.shape] for t in network.inputs]}).encode()

    class IExecutionContext:
        def __init__(self) -> None:
            self.shapes: dict[str, tuple] = {}

        def set_input_shape(self, name: str, shape: tuple) -> bool:
            self.shapes[name] = tuple(shape)
            st.log.append(("set_input_shape", name, tuple(shape)))
            return True

    class EngineInspector:
        execution_context = None

        def get_engine_information(self, fmt: _Member) -> str:
            st.log.append(("inspector", fmt.name, self.execution_context is not None))
            return json.dumps(st.inspector_json)

    class ICudaEngine:
        def __init__(self, inputs: list) -> None:
            self._io = [(n, s, True) for n, s in inputs] + [(n, s, False) for n, s in st.outputs]

        num_optimization_profiles = 1

        @property
        def num_io_tensors(self) -> int:
            return len(self._io)

        def get_tensor_name(self, i: int) -> str:
            return self._io[i][0]

        def _t(self, name: str) -> tuple:
            return next(t for t in self._io if t[0] == name)

        def get_tensor_mode(self, name: str) -> _Member:
            return mod.TensorIOMode.INPUT if self._t(name)[2] else mod.TensorIOMode.OUTPUT

        def get_tensor_dtype(self, name: str) -> _Member:
            return mod.DataType.FLOAT

        def get_tensor_shape(self, name: str) -> list[int]:
            return list(self._t(name)[1])

        def get_tensor_profile_shape(self, name: str, profile: int) -> list[list[int]]:
            p = st.config.profiles[profile].shapes[name]
            return [list(s) for s in p]

        def create_execution_context(self) -> IExecutionContext:
            return IExecutionContext()

        def create_engine_inspector(self) -> EngineInspector:
            return EngineInspector()

    class Runtime:
        def __init__(self, logger: Logger) -> None:
            self.engine_host_code_allowed = False

        def deserialize_cuda_engine(self, plan: bytes) -> ICudaEngine | None:
            if not plan.startswith(b"PLAN:"):
                return None
            return ICudaEngine(json.loads(plan[5:])["inputs"])

    for cls in (
        ITensor, INetworkDefinition, ParserError, OnnxParser, ITimingCache, IOptimizationProfile,
        IBuilderConfig, Builder, IExecutionContext, EngineInspector, ICudaEngine, Runtime,
    ):  # fmt: skip
        setattr(mod, cls.__name__, cls)

    if weak:

        class _Calibrator:
            def __init__(self) -> None:
                pass

        for name in ("IInt8EntropyCalibrator2", "IInt8EntropyCalibrator", "IInt8MinMaxCalibrator"):
            setattr(mod, name, type(name, (_Calibrator,), {}))
    return mod
