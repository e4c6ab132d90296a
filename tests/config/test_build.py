"""`BuildConfig`: recorded in report.json and read back, validated before any stage, overridden by keyword."""

from __future__ import annotations

import json
from argparse import Namespace
from dataclasses import fields
from pathlib import Path

import pytest

from trtq.config import (
    CONFIG_FORMAT,
    OVERRIDES,
    SECTIONS,
    BenchConfig,
    BuildConfig,
    CalibrationConfig,
    DataConfig,
    EngineConfig,
    ExportConfig,
    FallbackConfig,
    TypingConfig,
    ValidationConfig,
    bench_from_args,
    engine_from_args,
    placement_from_args,
)
from trtq.data import Preprocess, resolve_preprocess
from trtq.engines import EngineOptions
from trtq.errors import UsageError
from trtq.placement import PlacementConfig


def _everything_set() -> BuildConfig:
    """A configuration with a non-default value in every section."""
    return BuildConfig(
        model="resnet18", out="run", seed=3, plugins=("my_plugin",),
        export=ExportConfig(opset=13, weights="DEFAULT", checkpoint="c.pt", trust_pickle=True),
        data=DataConfig(calib_data="calib/", eval_data="val/", calib_samples=64, eval_samples=10, batch_size=8,
                        preprocess=Preprocess(size=8, resize=None, mean=(0.5,), std=(0.5,), channels=1)),
        placement=PlacementConfig(exclude_nodes=("a",), disable_rules=("SmallConv",), keep_first_last=True, batch_hint=4),
        calibration=CalibrationConfig(method="percentile", params={"percentile": 99.9}, choose_metric="mse",
                                      cache_version=(10, 13, 3)),
        fallback=FallbackConfig(max_drop=0.5, layers=("/conv1",), metric="cosine", workers=2),
        typing=TypingConfig(enabled=False, keep_fp32_nodes=("x",), keep_fp32_op_types=("Gemm",), data_max=1000.0),
        validation=ValidationConfig(metrics=("mse",), rtol=0.1, atol=0.2, check_error_stat="max"),
        engine=EngineConfig(batch=(1, 4, 8), shapes={"x": ((1, 3), (2, 3), (4, 3))}, workspace_gb=2.0,
                            timing_cache=Path("t.cache"), opt_level=5, hardware_compat="ampere_plus", version_compat=True,
                            precision="fp16", min_int8_fraction=0.25, verbose=True, enabled=False),
        bench=BenchConfig(batches=(1, 2), warmup=1, iterations=3, max_seconds=None, cuda_graph=True,
                          include_copies=False, threads=2, seed=5),
    )  # fmt: skip


def test_to_dict_from_dict_round_trips_every_section_through_json():
    cfg = _everything_set()
    doc = json.loads(json.dumps(cfg.to_dict()))
    assert doc["format_version"] == CONFIG_FORMAT and "force" not in doc
    back = BuildConfig.from_dict(doc)
    for name in ("model", "out", "seed", "plugins", *SECTIONS):
        if name != "data":
            assert getattr(back, name) == getattr(cfg, name), name
    # preprocessing comes back as its fields (what the data loader resolves to the same Preprocess)
    assert resolve_preprocess(back.data.preprocess, 1) == cfg.data.preprocess
    assert back.to_dict() == doc and BuildConfig.from_dict(back.to_dict()).to_dict() == doc
    assert BuildConfig.from_dict({"config": doc}).to_dict() == doc  # report.json holds it under "config"
    assert BuildConfig.from_dict(BuildConfig().to_dict()) == BuildConfig()


def test_from_dict_refuses_unknown_keys_other_versions_and_in_memory_models():
    doc = BuildConfig(model="m").to_dict()
    with pytest.raises(UsageError, match="recipe.json has unknown keys colour, size"):
        BuildConfig.from_dict({**doc, "colour": 1, "size": 2}, source="recipe.json")
    with pytest.raises(
        UsageError, match="config section 'typing' has unknown keys fp8; expected enabled, keep_fp32_nodes"
    ):
        BuildConfig.from_dict({**doc, "typing": {"fp8": True}})
    with pytest.raises(
        UsageError, match="is a 'trtq.config/0' configuration; this trtq reads 'trtq.config/1'"
    ):
        BuildConfig.from_dict({**doc, "format_version": "trtq.config/0"})
    import torch

    recorded = BuildConfig(model=torch.nn.Linear(2, 2)).to_dict()
    assert recorded["model"] == "<Linear>"
    with pytest.raises(UsageError, match=r"made from an in-memory model \(<Linear>\); pass --model"):
        BuildConfig.from_dict(recorded)


def test_load_reads_report_json_and_names_the_file_in_errors(tmp_path):
    (tmp_path / "report.json").write_text(
        json.dumps({"format": "trtq.report/2", "config": _everything_set().to_dict()})
    )
    assert BuildConfig.load(tmp_path / "report.json").calibration.method == "percentile"
    with pytest.raises(UsageError, match="--config .*none.json does not exist"):
        BuildConfig.load(tmp_path / "none.json")
    (tmp_path / "bad.json").write_text("{")
    with pytest.raises(UsageError, match="--config .*bad.json is not a JSON file"):
        BuildConfig.load(tmp_path / "bad.json")
    (tmp_path / "list.json").write_text("[]")
    with pytest.raises(UsageError, match="--config .*list.json holds no configuration object"):
        BuildConfig.load(tmp_path / "list.json")


@pytest.mark.parametrize(
    ("cfg", "message"),
    [
        (BuildConfig(model="m", data=DataConfig(calib_data="c")), "--out is required"),
        (BuildConfig(out="o", data=DataConfig(calib_data="c")), "--model is required"),
        (BuildConfig(model="m", out="o"), "--calib-data is required"),
        (BuildConfig(model="m", out="o", calibration=CalibrationConfig(cache="c.cache")), "--eval-data is needed"),
        (BuildConfig(out="o", from_qat="q.onnx"), "--from-qat needs --eval-data"),
        (BuildConfig(model="m", out="o", from_qat="q.onnx", data=DataConfig(eval_data="v")), "it takes no --model"),
        (BuildConfig(model="m", out="o", fp32_onnx="f.onnx", data=DataConfig(calib_data="c")),
         "--fp32-onnx only applies with --from-qat"),
        (BuildConfig(model="m.onnx", out="o", data=DataConfig(calib_data="c"), export=ExportConfig(checkpoint="c.pt")),
         "--checkpoint loads PyTorch weights; it cannot apply to the ONNX model m.onnx"),
        (BuildConfig(model="m", out="o", format="fp4", data=DataConfig(calib_data="c")), "--format 'fp4'"),
        (BuildConfig(model="m", out="o", data=DataConfig(calib_data="c", batch_size=0)), "--batch-size must be >= 1"),
    ],
)  # fmt: skip
def test_validate_names_what_is_missing_or_contradictory(cfg, message):
    with pytest.raises(UsageError, match=message):
        cfg.validate()


def test_a_complete_configuration_validates_and_returns_itself():
    cfg = BuildConfig(model="m", out="o", data=DataConfig(calib_data="c"))
    assert cfg.validate() is cfg and cfg.validate_sections() is cfg
    qat = BuildConfig(out="o", from_qat="q.onnx", fp32_onnx="f.onnx", data=DataConfig(eval_data="v"))
    assert qat.validate() is qat


#: every keyword of `trtq.build()` -> (a value, where it lands, what is read back there)
OVERRIDE_CASES = {
    "calib": ("mse", lambda c: c.calibration.method, "mse"),
    "percentile": (99.5, lambda c: c.calibration.params["percentile"], 99.5),
    "calib_cache": ("c.cache", lambda c: c.calibration.cache, "c.cache"),
    "trt_cache_version": ((10, 13, 3), lambda c: c.calibration.cache_version, (10, 13, 3)),
    "trt_cache": (True, lambda c: c.calibration.trt_cache, True),
    "choose_metric": ("mse", lambda c: c.calibration.choose_metric, "mse"),
    "choose_samples": (64, lambda c: c.calibration.choose_samples, 64),
    "exporter": ("dynamo", lambda c: c.export.exporter, "dynamo"),
    "weight_ptq": ("bias-correction", lambda c: c.weights.methods, ("bias-correction",)),
    "weight_storage": ("int8", lambda c: c.weights.storage, "int8"),
    "eval_data": ("val/", lambda c: c.data.eval_data, "val/"),
    "preprocess": ("raw", lambda c: c.data.preprocess, "raw"),
    "calib_samples": (7, lambda c: c.data.calib_samples, 7),
    "eval_samples": (9, lambda c: c.data.eval_samples, 9),
    "batch_size": (3, lambda c: c.data.batch_size, 3),
    "opset": (13, lambda c: c.export.opset, 13),
    "weights": ("DEFAULT", lambda c: c.export.weights, "DEFAULT"),
    "checkpoint": ("c.pt", lambda c: c.export.checkpoint, "c.pt"),
    "trust_pickle": (True, lambda c: c.export.trust_pickle, True),
    "typed_graph": (False, lambda c: c.typing.enabled, False),
    "typed_samples": (0, lambda c: c.typing.samples, 0),
    "max_drop": (0.5, lambda c: c.fallback.max_drop, 0.5),
    "fallback": (["/a", "/b"], lambda c: c.fallback.layers, ("/a", "/b")),
    "metric": ("cosine", lambda c: c.fallback.metric, "cosine"),
    "rank_by": ("kl", lambda c: c.fallback.rank_by, "kl"),
    "alone_int8": (True, lambda c: c.fallback.alone_int8, True),
    "build_engine": (False, lambda c: c.engine.enabled, False),
    "smoothquant": (0.5, lambda c: c.calibration.smoothquant, 0.5),
    "task": ("detect", lambda c: c.task.task, "detect"),
    "decoder": ("boxes", lambda c: c.task.decoder, "boxes"),
    "num_classes": (4, lambda c: c.task.num_classes, 4),
    "conf_threshold": (0.25, lambda c: c.task.conf_threshold, 0.25),
    "iou_threshold": (0.65, lambda c: c.task.iou_threshold, 0.65),
    "max_det": (100, lambda c: c.task.max_det, 100),
    "reference_conf": (0.5, lambda c: c.task.reference_conf, 0.5),
    "labels": ("l.json", lambda c: c.task.labels, "l.json"),
}


def test_every_override_has_a_case():
    assert set(OVERRIDE_CASES) == set(OVERRIDES)


@pytest.mark.parametrize("key", sorted(OVERRIDES))
def test_with_overrides_maps_each_keyword_to_its_field(key):
    value, read, expected = OVERRIDE_CASES[key]
    base = BuildConfig()
    cfg = base.with_overrides(**{key: value})
    assert read(cfg) == expected
    section, _ = OVERRIDES[key]
    for other in SECTIONS:  # nothing else changed
        if other != section:
            assert getattr(cfg, other) == getattr(base, other), other
    assert base == BuildConfig()  # a copy


def test_with_overrides_takes_whole_sections_and_top_level_fields():
    cfg = BuildConfig().with_overrides(
        placement=PlacementConfig(keep_first_last=True), seed=7, force=True, out="o"
    )
    assert cfg.placement.keep_first_last and (cfg.seed, cfg.force, cfg.out) == (7, True, "o")
    eng = BuildConfig(engine=EngineConfig(enabled=False)).with_overrides(engine=EngineOptions(opt_level=1))
    assert isinstance(eng.engine, EngineConfig) and eng.engine.opt_level == 1 and eng.engine.enabled is False
    assert BuildConfig().with_overrides(fallback=3).fallback.layers == 3
    with pytest.raises(
        UsageError,
        match="unknown setting 'calibration_method'; valid settings: alone_int8, batch_size, build_engine",
    ):
        BuildConfig().with_overrides(calibration_method="mse")


def test_placement_engine_and_bench_from_args_change_only_what_was_given():
    base = PlacementConfig(disable_rules=("Commuting",))
    assert placement_from_args(Namespace(), base) is base
    cfg = placement_from_args(Namespace(exclude=["a,b", "c"], exclude_op_type=["Gemm"], keep_first_last=True,
                                        enable_rule=["X"], quantize_small=True), base)  # fmt: skip
    assert cfg.exclude_nodes == ("a", "b", "c") and cfg.exclude_op_types == ("Gemm",) and cfg.keep_first_last
    assert cfg.enable_rules == ("X",) and cfg.disable_rules == ("Commuting", "SmallConv", "SmallOrGemv")
    eng = engine_from_args(Namespace(batch="2,4,8", shapes=["x:1x3,2x3,4x3"], opt_level=1, engine_calib_cache="c",
                                     no_engine=True))  # fmt: skip
    assert eng.batch == (2, 4, 8) and eng.shapes == {"x": ((1, 3), (2, 3), (4, 3))} and eng.opt_level == 1
    assert (
        str(eng.calib_cache) == "c"
        and eng.enabled is False
        and engine_from_args(Namespace()) == EngineConfig()
    )
    bench = bench_from_args(Namespace(bench_batch="1,16", iterations=5, cuda_graph=True, no_copies=True))
    assert (
        bench.batches == (1, 16) and bench.iterations == 5 and bench.cuda_graph and not bench.include_copies
    )
    assert bench_from_args(Namespace()) == BenchConfig()


def test_the_sections_are_the_fields_of_build_config():
    assert set(SECTIONS) <= {f.name for f in fields(BuildConfig)}
