"""`trtq.finetune.quantize`: ModelOpt quantizers on exactly the plan's layers, on a copy of the user's module."""

from __future__ import annotations

import numpy as np
import torch

from trtq.finetune.targets import MODULE_KINDS
from trtq.placement import PlacementConfig, normalize, plan_qdq


def _digits_export(digits: dict):
    from trtq.data import load_data
    from trtq.export import export_onnx, resolve_model

    ds = load_data(str(digits["val"]), limit=64, seed=0)
    sample = next(ds.iter_batches(2))[0]
    return ds, sample, export_onnx(resolve_model(digits["model"]), sample).model


def test_quantizers_sit_on_the_plans_layers_of_a_copy(digits: dict) -> None:
    from trtq.finetune import quantize_model

    ds, sample, fp32 = _digits_export(digits)
    before = {k: v.clone() for k, v in digits["model"].state_dict().items()}
    plan = plan_qdq(fp32, PlacementConfig(exclude_nodes=("/conv2/conv2.0/Conv",)))
    qm = quantize_model(digits["model"], fp32, plan, sample)
    assert "/conv2/conv2.0/Conv" not in {t.node for t in qm.targets}
    ops = {n.name: n.op_type for n in normalize(fp32).graph.node}
    assert {t.node for t in qm.targets} == {n for n in plan.quantized_nodes if ops.get(n) in MODULE_KINDS}
    enabled = {n for n, m in qm.model.named_modules() if n.endswith("_quantizer") and m.is_enabled}
    expected = {f"{t.module}.{kind}_quantizer" for t in qm.targets for kind in ("input", "weight")}
    assert expected <= enabled and "conv2.0.input_quantizer" not in enabled
    for k, v in digits["model"].state_dict().items():  # the user's module is untouched
        torch.testing.assert_close(v, before[k])
    assert not hasattr(digits["model"], "trtq_output_quantizers")


def test_set_quantization_switches_every_quantizer(digits: dict) -> None:
    from trtq.finetune import calibrate_inputs, quantize_model

    ds, sample, fp32 = _digits_export(digits)
    qm = quantize_model(digits["model"], fp32, plan_qdq(fp32), sample)
    calibrate_inputs(qm, (x for x, _ in ds.iter_batches(32)), "minmax")
    x = torch.from_numpy(np.ascontiguousarray(sample))
    qm.model.eval()
    with torch.no_grad():
        quantized = qm.model(x)
        qm.set_quantization(False)
        assert not any(q.is_enabled for q in qm.all_quantizers())
        fp32_out = qm.model(x)
        reference = digits["model"].eval()(x)
    torch.testing.assert_close(fp32_out, reference)  # all quantizers off: the FP32 model
    assert not torch.equal(quantized, fp32_out)
