"""The detection rules: the box/score Concat found structurally, the head's prediction layers and DFL kept out of
INT8, decoding and post-processing never quantized, the neck's Resize/Concat and their shared scales."""

from __future__ import annotations

import pytest

from tests.placement.checks import qdq_runs
from trtq.placement import PlacementConfig, plan_qdq
from trtq.placement.graph import GraphIndex, normalize
from trtq.placement.rules.detection import head_concats, head_region

DETECTION_RULES = ("DetectionHead", "DetectionPostprocess", "NeckResizeConcat", "ConcatThroughResize")


def _index(m):
    return GraphIndex(normalize(m))


def _rules(plan, rule):
    return {d.node for d in plan.decisions if d.rule == rule}


def _conv_inputs(m, names):
    return {n.input[0] for n in m.graph.node if n.name in names}


def test_the_box_score_concat_is_the_one_feeding_the_output(onnx_graph):
    m = onnx_graph("digits_detector")
    index = _index(m)
    found = head_concats(index)
    assert len(found) == 1 and found[0].output[0] == "output0"
    ops = {index.producer_of(t).op_type for t in found[0].input}
    assert "Sigmoid" in ops and ops != {"Sigmoid"}


def test_the_prediction_layers_stay_high_precision_and_the_rest_is_int8(onnx_graph):
    m = onnx_graph("digits_detector")
    plan = plan_qdq(m)
    head = _rules(plan, "DetectionHead")
    assert head == {f"/{b}.{lvl}/{b}.{lvl}.1/Conv" for b in ("box", "cls") for lvl in (0, 1)}
    convs = {n.name for n in m.graph.node if n.op_type == "Conv"}
    assert set(plan.quantized_nodes) == convs - head
    # the feature maps the prediction convs read are quantized for their 3x3 convs, never for the 1x1s
    for name in head:
        assert name not in sum(plan.consumers.values(), [])
    # without the rule the four 1x1 prediction convs get Q/DQ like any other conv
    off = plan_qdq(m, PlacementConfig(disable_rules=("DetectionHead",)))
    assert set(off.quantized_nodes) == convs
    assert _conv_inputs(m, head) <= set(off.activations)
    qdq_runs(m, plan)


def test_decoding_sigmoid_and_the_meeting_concat_get_no_qdq_and_say_why(onnx_graph):
    m = onnx_graph("digits_detector")
    plan = plan_qdq(m)
    post = {d.node: d for d in plan.decisions if d.rule == "DetectionPostprocess"}
    by_op = {d.op_type for d in post.values()}
    assert {"Sigmoid", "Softplus", "Concat", "Add", "Sub", "Mul", "Div"} <= by_op
    assert not any(d.quantized for d in post.values())
    meet = [d for d in post.values() if "meet" in d.reason]
    assert [d.op_type for d in meet] == ["Concat"]
    index = _index(m)
    region, _ = head_region(index)
    produced = {o for n in index.nodes if n.name in region for o in n.output}
    assert not produced & set(plan.activations)  # nothing from the head's decoding is quantized


def test_ultralytics_dfl_is_decoding_and_its_softmax_is_not_attention(onnx_graph):
    m = onnx_graph("v8_dfl_detector")
    plan = plan_qdq(m)
    assert plan.decision_for("/dfl/Conv").rule == "DetectionHead"
    assert "DFL" in plan.decision_for("/dfl/Conv").reason
    assert plan.decision_for("/Softmax").rule == "DetectionPostprocess"
    # the prediction layers are the convs that write the bins and the logits, one per level and branch
    assert _rules(plan, "DetectionHead") == {
        "/dfl/Conv",
        *(f"/{b}.{lvl}/{b}.{lvl}.1/Conv" for b in ("cv2", "cv3") for lvl in (0, 1)),
    }
    qdq_runs(m, plan)


def test_post_processing_is_never_quantized_and_its_layers_are_left_alone(onnx_graph):
    m = onnx_graph("topk_head")
    plan = plan_qdq(m)
    post = {d.node: d.reason for d in plan.decisions if d.rule == "DetectionPostprocess"}
    assert "post-processing (TopK)" in post["/TopK"] and "GatherElements" in post["/GatherElements"]
    assert {"/Mul_1", "/Add"} <= set(post)  # the arithmetic after the gather
    # no box/score Concat here: the convolutions before post-processing are ordinary INT8 layers
    assert not _rules(plan, "DetectionHead")
    assert {"/box/Conv", "/score/Conv"} <= set(plan.quantized_nodes) | {
        d.node for d in plan.decisions if d.rule == "SmallConv"
    }
    qdq_runs(m, plan)


def test_nms_and_the_box_decoding_before_it_get_no_qdq_and_the_convs_stay_int8(onnx_graph):
    m = onnx_graph("nms_head")
    plan = plan_qdq(m)
    post = {d.node: d for d in plan.decisions if d.rule == "DetectionPostprocess"}
    assert "post-processing (NonMaxSuppression)" in post["/NonMaxSuppression"].reason
    assert {"Exp", "Mul", "Sub", "Add", "Concat", "Sigmoid", "Gather"} <= {d.op_type for d in post.values()}
    assert set(plan.quantized_nodes) == {n.name for n in m.graph.node if n.op_type == "Conv"}
    index = _index(m)
    region, _ = head_region(index)
    produced = {o for n in index.nodes if n.name in region for o in n.output}
    assert not produced & set(plan.activations)
    qdq_runs(m, plan)


def test_neck_resize_and_concat_commute_and_their_qs_share_one_scale(onnx_graph):
    m = onnx_graph("digits_detector")
    plan = plan_qdq(m)
    neck = {d.node: d for d in plan.decisions if d.rule == "NeckResizeConcat"}
    assert {d.op_type for d in neck.values()} == {"Resize", "Concat"}
    assert "nearest" in neck["/up/Resize"].reason and not any(d.quantized for d in neck.values())
    # the lateral conv's output reaches both neck Concats (through the Upsample and directly): one scale for
    # both Concat outputs and the P3 feature map that the first one also reads
    cat3, cat4, p3 = "/Concat_output_0", "/Concat_1_output_0", "/layer3/layer3.1/layer3.1.2/Mul_output_0"
    assert plan.scale_groups == [[p3, cat3, cat4]]
    shared_only = plan_qdq(m, PlacementConfig(disable_rules=("ConcatThroughResize",)))
    assert shared_only.scale_groups == [[p3, cat3]]
    assert shared_only.activations == plan.activations  # only the scale groups change


@pytest.mark.parametrize(
    "name", ["tiny_cnn", "residual_block", "transformer_block", "concat", "squeeze_excitation"]
)
def test_networks_without_a_detection_head_get_the_same_plan(onnx_graph, name):
    m = onnx_graph(name)
    with_rules = plan_qdq(m)
    without = plan_qdq(m, PlacementConfig(disable_rules=DETECTION_RULES))
    assert with_rules.activations == without.activations and with_rules.weights == without.weights
    assert with_rules.scale_groups == without.scale_groups
    assert not {d.rule for d in with_rules.decisions} & {"DetectionHead", "DetectionPostprocess"}
