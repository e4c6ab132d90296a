"""The `QuantFormat` description and the registry of formats."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from trtq.registry import Registry

__all__ = ["QuantFormat", "FORMATS", "register_format", "get_format", "MIN_SCALE"]

#: Floor for every scale: the smallest normal FP16 number, so scales stay exact, positive and normal in the FP16
#: typing of model.trt.onnx (any format).
MIN_SCALE = 2.0**-14


@dataclass(frozen=True)
class QuantFormat:
    """A symmetric quantization format as TensorRT's explicit quantization uses it.

    Attributes:
        name: registry name ("int8").
        max_value: the largest representable magnitude; scale = amax / max_value (127 for INT8: TensorRT
            quantizes activations to [-128, 127] and weights to [-127, 127], both with scale amax / 127).
        qmin, qmax: the range QuantizeLinear saturates to.
        onnx_type: the ONNX element type of the quantized tensor and of the zero point.
        numpy_dtype: the matching numpy type (for zero points).
        levels: distinct non-negative magnitudes a threshold is spread over (entropy calibration's
            candidate distribution has this many levels: 128 for INT8).
        min_opset: the lowest ONNX opset whose QuantizeLinear/DequantizeLinear take this format per channel.
        num_bits: what fake quantizers (ModelOpt's `num_bits`) are given for this format.
        trt_precision: the precision TensorRT's engine inspector reports for layers in this format.
    """

    name: str
    max_value: float
    qmin: float
    qmax: float
    onnx_type: int
    numpy_dtype: type
    levels: int
    min_opset: int
    num_bits: int | tuple[int, int]
    trt_precision: str

    def scale(self, amax: float | np.ndarray) -> float | np.ndarray:
        """amax -> scale (no floor applied; see `MIN_SCALE`)."""
        return amax / self.max_value

    def amax(self, scale: float | np.ndarray) -> float | np.ndarray:
        """scale -> amax (inverse of `scale`)."""
        return scale * self.max_value

    @property
    def min_amax(self) -> float:
        """The amax of the smallest scale (`MIN_SCALE`): what a tensor that was exactly zero is given."""
        return float(self.max_value * MIN_SCALE)

    def zero_point(self, shape: tuple[int, ...] = ()) -> np.ndarray:
        """The all-zero zero point TensorRT requires, in this format's type."""
        return np.zeros(shape, dtype=self.numpy_dtype)


FORMATS: Registry[QuantFormat] = Registry("quantization format", "--format")


def register_format(fmt: QuantFormat) -> QuantFormat:
    """Register a format under its name."""
    return FORMATS.register(fmt.name, fmt)


def get_format(name: str | QuantFormat) -> QuantFormat:
    """A registered format by name (a `QuantFormat` is returned as given)."""
    return name if isinstance(name, QuantFormat) else FORMATS.get(name)
