"""The calibrator registry, the collect/compute protocol, and the parameters a method declares."""

from __future__ import annotations

import numpy as np
import pytest

from tests.calibrators.cases import collect
from trtq.calibrators import (
    ALIASES,
    CALIBRATORS,
    CalibParam,
    HistogramCollector,
    MinMaxCalibrator,
    canonical_method,
    get_calibrator,
    list_calibrators,
    method_params,
    register_alias,
    register_calibrator,
)
from trtq.calibrators.base import Calibrator
from trtq.errors import UsageError


def test_registry_has_the_four_methods_and_the_max_alias():
    assert list_calibrators() == ["entropy", "minmax", "percentile", "mse"]  # the order --calib all uses
    assert isinstance(get_calibrator("max"), MinMaxCalibrator)
    assert get_calibrator("percentile", percentile=99.9).percentile == 99.9
    with pytest.raises(UsageError, match="'kl' is not a registered calibration method; choose from entropy"):
        get_calibrator("kl")


def test_standalone_calibrators_follow_the_collect_compute_protocol(samples):
    x = samples["laplace"]
    cals = {m: get_calibrator(m) for m in list_calibrators()}
    for part in np.array_split(x, 4):
        for c in cals.values():
            c.collect({"a": part, "b": 2 * part})
    shared = HistogramCollector()
    for part in np.array_split(x, 4):
        shared.collect({"a": part, "b": 2 * part})
    for m, c in cals.items():
        amax = c.compute_amax()
        assert set(amax) == {"a", "b"}
        assert amax["b"] == pytest.approx(2 * amax["a"], rel=1e-6)  # scale equivariance (power-of-two bins)
        assert amax == get_calibrator(m, collector=shared).compute_amax()
    assert cals["minmax"].collector.tensors["a"].fine is None  # minmax alone keeps no histogram


def test_aliases_canonical_names_and_declared_parameters():
    assert dict(ALIASES) == {"max": "minmax"} and canonical_method("max") == "minmax"
    assert canonical_method("unknown") == "unknown"
    assert list(method_params("percentile")) == ["percentile"]
    assert list(method_params("entropy")) == ["num_bins", "start_bin", "saturation"]
    assert list(method_params("mse")) == ["num_bins", "start_bin"]
    assert list(method_params("minmax")) == []
    with pytest.raises(UsageError, match="'kl' is not a registered calibration method"):
        method_params("kl")


def test_a_registered_plugin_method_is_listed_everywhere_and_can_be_aliased():
    @register_calibrator("halfmax")
    class HalfMax(MinMaxCalibrator):
        """Half of max |x| (a plugin's method)."""

        def amax_from(self, rec):
            return rec.absmax / 2

    try:
        register_alias("hm", "halfmax")
        assert HalfMax.method == "halfmax" and list_calibrators()[-1] == "halfmax"
        assert ALIASES["hm"] == "halfmax" and len(ALIASES) == 2
        assert get_calibrator("hm", collector=collect(np.array([-8.0, 2.0], np.float32))).compute_amax() == {
            "t": 4.0
        }
        with pytest.raises(ValueError, match="'halfmax' is registered twice"):
            register_calibrator("halfmax")(HalfMax)
    finally:
        CALIBRATORS.unregister("halfmax")
    assert "hm" not in ALIASES and "halfmax" not in list_calibrators()


@pytest.mark.parametrize(
    ("param", "value", "expected"),
    [
        (CalibParam("percentile", float, 99.99, "p", low=0, high=100, low_open=True), "99.9", 99.9),
        (CalibParam("num_bins", int, 2048, "bins", low=2), "4096", 4096),
        (CalibParam("mode", str, "a", "text"), 3, "3"),
    ],
)
def test_parameters_convert_text_to_their_type(param, value, expected):
    assert param.convert(value, "m") == expected and type(param.convert(value, "m")) is param.type


def test_parameters_refuse_wrong_types_and_out_of_range_values_by_name():
    p = CalibParam("percentile", float, 99.99, "p", low=0, high=100, low_open=True)
    with pytest.raises(UsageError, match="--calib-param percentile='x': m expects a float"):
        p.convert("x", "m")
    with pytest.raises(UsageError, match=r"--calib-param percentile=0: must be > 0 \(m\)"):
        p.convert(0, "m")
    with pytest.raises(UsageError, match=r"--calib-param percentile=101: must be <= 100 \(m\)"):
        p.convert(101, "m")
    with pytest.raises(UsageError, match=r"--calib-param num_bins=1: must be >= 2 \(m\)"):
        CalibParam("num_bins", int, 2048, "bins", low=2).convert(1, "m")


def test_the_base_protocol_is_abstract():
    cal = Calibrator()
    with pytest.raises(NotImplementedError):
        cal.collect({"t": np.zeros(3, np.float32)})
    with pytest.raises(NotImplementedError):
        cal.compute_amax()
