"""The task stage (`--task detect|segment`): read the FP32 model's outputs once, check that the decoder can read
them and that the labels fit the model's classes, and bind the decoder to the data's targets, so validation,
sensitivity, the FP16 fallback and the engine check score the same detections. Also renders the per-class AP of
validation into report.json ("detection") and report.md (the worst classes)."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from trtq.errors import UsageError
from trtq.pipeline.context import RunContext

__all__ = ["TaskStage", "task_binding", "detection_section", "WORST_CLASSES"]

#: Classes report.md lists (lowest INT8 AP first).
WORST_CLASSES = 5


@dataclass
class TaskStage:
    """Checks the model's outputs against the task and binds the decoder to `ctx.inputs`' targets."""

    name: str = "task"

    def active(self, ctx: RunContext) -> bool:
        return ctx.config.task.task != "classify"

    def check(self, ctx: RunContext) -> None:
        if ctx.config.task.task == "detect":
            from trtq.decoders import resolve_decoder

            resolve_decoder(ctx.config.task.decoder_name)

    def run(self, ctx: RunContext) -> None:
        from trtq.runners import OnnxRuntimeRunner

        data = ctx.inputs.validation
        if data is None:
            return
        fp32 = ctx.need("fp32", self.name)
        with OnnxRuntimeRunner(fp32, name="fp32") as runner:
            outputs = runner.infer(next(iter(ctx.feeds(data.subset(min(2, len(data)), ctx.config.seed), 2))))
        bind = task_binding(ctx.config.task, outputs, data)
        for attr in ("calib", "eval"):
            ds = getattr(ctx.inputs, attr)
            if ds is not None and ds.targets is not None and ds.targets.kind in ("detection", "segmentation"):
                setattr(ctx.inputs, attr, replace(ds, targets=bind(ds.targets)))


def task_binding(cfg: Any, outputs: dict[str, Any], data: Any, option: str = "--eval-data") -> Any:
    """`targets -> targets` with the run's decoder (detection) or class count (segmentation) bound, after checking
    the model's `outputs` (a batch of FP32 outputs) and the labels of `data` against each other.

    Args:
        cfg: the task section (`trtq.config.TaskConfig`).
        outputs: the reference model's outputs on a batch of `data`.
        data: the labelled (or unlabelled) evaluation data.
        option: the option the data came from, for messages.

    Raises:
        UsageError: outputs the decoder cannot read (naming the shape it expected), or a class id in the labels
            beyond the model's classes.
    """
    if cfg.task == "detect":
        return _bind_detection(cfg, outputs, data, option)
    return _bind_segmentation(outputs, data, option)


def _check_classes(data: Any, option: str, highest: int | None, classes: int | None, what: str) -> None:
    if highest is None or classes is None or highest < classes:
        return
    raise UsageError(
        f"{option} {data.name}: the labels hold class id {highest} but the model scores {classes} classes "
        f"(0..{classes - 1}); check the labels ({what}) or the model"
    )


def _bind_detection(cfg: Any, outputs: dict[str, Any], data: Any, option: str) -> Any:
    from trtq.decoders import BoundDecoder, DecodeSettings, resolve_decoder

    decoder = resolve_decoder(cfg.decoder_name)
    decoder(outputs)  # the shapes it reads: one line naming the shape it expected otherwise
    classes = decoder.num_classes(outputs) or cfg.num_classes
    if cfg.num_classes is not None and classes is not None and cfg.num_classes != classes:
        raise UsageError(
            f"--num-classes {cfg.num_classes}, but the model's outputs hold {classes} classes (decoder {decoder.name})"
        )
    targets = data.targets if data is not None else None
    if targets is not None and targets.labelled:
        _check_classes(
            data,
            option,
            targets.max_class,
            classes,
            "class ids are 0-based; COCO categories count in id order",
        )
    settings = DecodeSettings(cfg.conf_threshold, cfg.iou_threshold, cfg.max_det, cfg.num_classes)
    bound = BoundDecoder(decoder, settings, classes, cfg.reference_conf)
    return lambda t: t.with_decoder(bound)


def _bind_segmentation(outputs: dict[str, Any], data: Any, option: str) -> Any:
    import numpy as np

    from trtq.metrics.segmentation import IGNORE, predicted_classes

    predicted_classes(outputs)  # the shape it reads
    classes = int(np.asarray(next(iter(outputs.values()))).shape[1])
    targets = data.targets if data is not None else None
    if targets is not None and targets.labelled:
        masks = targets.masks[targets.masks != IGNORE]
        _check_classes(data, option, int(masks.max()) if masks.size else None, classes, "255 = ignore")
    return lambda t: replace(t, num_classes=classes)


def detection_section(ctx: RunContext, runs: Any) -> Any:
    """The per-class AP of every validated model (report.json "detection", report.md's worst classes)."""
    from trtq.metrics.detection import evaluate_detection
    from trtq.pipeline.results import ReportSection
    from trtq.validate import stacked_outputs

    data = ctx.inputs.validation
    targets = data.targets if data is not None else None
    if targets is None or targets.kind != "detection":
        return None
    ref = stacked_outputs(runs, "fp32")
    labels = [label for label, _ in runs.items()]
    results = {label: evaluate_detection(ref, stacked_outputs(runs, label), targets) for label in labels}
    bound = targets.decoder
    doc = {
        "labelled": bool(targets.labelled),
        "reference": "labels" if targets.labelled else "fp32 detections",
        "decoder": None if bound is None else bound.decoder.name,
        "num_classes": None if bound is None else bound.num_classes,
        "settings": None
        if bound is None
        else {**vars(bound.settings), "reference_conf": bound.reference_conf},
        "models": {label: r.to_json() for label, r in results.items()},
    }
    return ReportSection("Detection", _markdown(results, targets.labelled), key="detection", data=doc)


def _markdown(results: dict[str, Any], labelled: bool) -> str:
    against = "the labels" if labelled else "FP32's confident detections (no labels; --reference-conf)"
    lines = [
        f"COCO mAP (faster-coco-eval) against {against}.",
        "",
        "| model | mAP50-95 | mAP50 |",
        "|---|---|---|",
    ]
    from trtq.report import MODEL_LABELS

    for label, r in results.items():
        lines.append(f"| {MODEL_LABELS.get(label, label)} | {100 * r.map50_95:.2f}% | {100 * r.map50:.2f}% |")
    worst_of = results.get("int8") or next(iter(results.values()))
    ref = results.get("fp32")
    rows = sorted(worst_of.classes, key=lambda c: (c.map50_95 if c.map50_95 is not None else 0.0, c.id))
    if rows:
        lines += ["", f"Worst classes (INT8 mAP50-95, lowest {min(WORST_CLASSES, len(rows))}):", "",
                  "| class | instances | FP32 | INT8 | drop (points) |", "|---|---|---|---|---|"]  # fmt: skip
        by_id = {c.id: c for c in ref.classes} if ref is not None else {}
        for c in rows[:WORST_CLASSES]:
            f = by_id.get(c.id)
            fv = f.map50_95 if f is not None else None
            drop = "—" if fv is None or c.map50_95 is None else f"{100 * (fv - c.map50_95):.2f}"
            fp = "—" if fv is None else f"{100 * fv:.2f}%"
            lines.append(f"| {c.name} | {c.instances} | {fp} | {100 * (c.map50_95 or 0):.2f}% | {drop} |")
    return "\n".join(lines)
