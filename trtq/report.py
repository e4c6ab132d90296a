"""report.md: one page a person reads, rendered from a run's typed results (report.json is `BuildResult.to_json`)."""

from __future__ import annotations

from typing import Any

from trtq import artifacts as A

__all__ = ["render_markdown", "accuracy_rows", "MODEL_LABELS"]

#: validation label -> how the report names the model
MODEL_LABELS = {
    "fp32": f"FP32 ({A.MODEL_ONNX})",
    "int8": f"INT8 ({A.INT8_ONNX})",
    "typed": f"INT8+FP16 typed ({A.TYPED_ONNX})",
    "candidate": "candidate",
    "reference": "reference",
}


def accuracy_rows(validation: Any) -> list[tuple[str, dict[str, float | None]]]:
    """(model label, metric name -> value) for the reference and every candidate of a validation result."""
    if validation is None:
        return []
    names = [m.name for m in validation.metrics]
    models = [validation.reference, *validation.candidates]
    subsets = validation.subsets() if hasattr(validation, "subsets") else {}

    def label(k: str) -> str:
        return MODEL_LABELS.get(k, k) + (f", {subsets[k]} samples" if k in subsets else "")

    return [(label(k), {n: validation.value(k, n) for n in names}) for k in models]


def _data_phrase(validation: Any) -> str:
    data = validation.data or "evaluation"
    if data == "eval":
        return f"{validation.samples} samples of the evaluation data"
    if data.startswith("calibration"):
        return f"{validation.samples} samples of the calibration data (no --eval-data given)"
    return f"{validation.samples} samples of {data}"


def _accuracy(result: Any) -> list[str]:
    val = result.validation
    rows = accuracy_rows(val)
    if not rows:
        return []
    metrics = val.metrics
    lines = [
        f"## Accuracy ({_data_phrase(val)}, ONNX Runtime executing Q/DQ as written)",
        "",
        "| model | " + " | ".join(m.heading for m in metrics) + " |",
        "|---|" + "---|" * len(metrics),
    ]
    for label, values in rows:
        lines.append(f"| {label} | " + " | ".join(m.format(values.get(m.name)) for m in metrics) + " |")
    return [*lines, ""]


def _calibration(result: Any) -> list[str]:
    cal = result.calibration
    if cal is None:
        return []
    if cal.source == "cache":
        lines = [
            "## Calibration",
            "",
            f"Scales from the TensorRT calibration cache `{cal.cache}` ({cal.tensors} tensors).",
            "",
        ]
    elif cal.source == "qat":
        return []
    else:
        lines = [
            "## Calibration",
            "",
            f"Method: **{cal.method}** over {cal.samples} samples, {cal.tensors} activation tensors.",
            "",
        ]
    if cal.scores:
        from trtq.metrics import METRICS

        keys = list(next(iter(cal.scores.values())))
        lines += [
            f"Fidelity of each method's Q/DQ model to FP32 on held-out data, chosen by **{cal.choose_metric}** "
            "(the chosen method is in bold):",
            "",
            "| method | " + " | ".join(METRICS.get(k).heading if k in METRICS else k for k in keys) + " |",
            "|---|" + "---|" * len(keys),
        ]
        for meth, sc in cal.scores.items():
            name = f"**{meth}**" if meth == cal.method else meth
            cells = [METRICS.get(k).format(sc.get(k)) if k in METRICS else f"{sc.get(k):.6g}" for k in keys]
            lines.append(f"| {name} | " + " | ".join(cells) + " |")
        lines.append("")
    for w in cal.warnings:
        lines += [f"Note: {w}.", ""]
    for name in result.artifacts:
        if name.startswith(A.CALIB_PLOT_PREFIX) and name.endswith(".png"):
            lines += [f"![{name}]({name})", ""]
    return lines


def _placement(result: Any) -> list[str]:
    pl = result.placement
    if pl is None:
        return []
    lines = [
        "## Q/DQ placement",
        "",
        f"{pl.quantized_nodes} weighted layers quantized; {pl.activation_qdq} activation and {pl.weight_qdq} weight "
        "Q/DQ pairs.",
        "",
    ]
    if pl.skipped:
        lines += ["Not quantized:", "", "| node | op | rule | reason |", "|---|---|---|---|"]
        for s in pl.skipped[:40]:
            lines.append(f"| `{s['node']}` | {s['op_type']} | {s['rule']} | {s['reason']} |")
        if len(pl.skipped) > 40:
            lines.append(f"| … {len(pl.skipped) - 40} more in report.json | | | |")
        lines.append("")
    return lines


def _typing(result: Any) -> list[str]:
    t = result.typing
    if t is None:
        return []
    lines = [
        "## Typed graph",
        "",
        f"`{A.TYPED_ONNX}`: INT8 where Q/DQ say so, FP16 elsewhere, graph I/O FP32.",
    ]
    if t.fp32_nodes:
        lines += [f" {len(t.fp32_nodes)} node(s) stay FP32 (ranges from {t.ranges_from}):", ""]
        lines += ["| node | op | reason |", "|---|---|---|"]
        lines += [f"| `{d['node']}` | {d['op_type']} | {d['reason']} |" for d in t.fp32_nodes[:20]]
        if len(t.fp32_nodes) > 20:
            lines.append(f"| … {len(t.fp32_nodes) - 20} more in report.json | | |")
    return [*lines, ""]


def _handoff(info: Any) -> list[str]:
    """The trtexec commands per TensorRT line and the Polygraphy check, as shell blocks (run from this folder)."""
    cmds = getattr(info, "handoff", None) or []
    note = getattr(info, "handoff_note", None)
    if not cmds:
        return [f"{note}.", ""] if note else []
    lines = [
        "### With NVIDIA's tools",
        "",
        "From this folder, on the GPU machine. Build the same engine with trtexec:",
        "",
    ]
    for c in (c for c in cmds if c["tool"] == "trtexec"):
        lines += [f"**{c['tensorrt']}**: {c['purpose']}.", "", "```bash", c["command"], "```", ""]
    checks = [c for c in cmds if c["tool"] == "polygraphy"]
    if checks:
        lines += ["Compare the engine with the FP32 `model.onnx` (Polygraphy):", "", "```bash"]
        lines += [c["command"] for c in checks] + ["```", ""]
    if note:
        lines += [f"Note: {note}.", ""]
    return lines


def render_markdown(result: Any) -> str:
    """report.md of a `trtq.pipeline.BuildResult`."""
    lines = ["# trtq build report", ""]
    exp = result.export
    if exp is not None:
        how = f", {exp.exporter} exporter ({exp.exporter_reason})" if getattr(exp, "exporter", None) else ""
        lines += [f"Model: `{exp.source}` ({exp.kind}, opset {exp.opset}, {exp.nodes} nodes{how}).", ""]
        lines += [*(f"- {n}" for n in exp.notes), ""] if exp.notes else []
    if result.warnings:
        lines += ["## Warnings", "", *[f"- {w}" for w in result.warnings], ""]
    lines += _accuracy(result) + _calibration(result) + _placement(result)
    for section in result.sections:
        lines += [f"## {section.title}", "", section.markdown.rstrip(), ""]
    lines += _typing(result)
    lines += ["## Engine", "", result.engine_status or "not attempted", ""]
    lines += _handoff(result.engine_info)
    lines += ["## Artifacts", "", "| file | what it is |", "|---|---|"]
    lines += [f"| [{name}]({name}) | {A.describe(name)} |" for name in result.artifacts]
    memory = getattr(result, "memory_mb", None) or {}
    if memory:
        lines += ["", "## Timings", "", "| stage | seconds | peak RSS (MiB) |", "|---|---|---|"]
        lines += [
            f"| {k} | {v:.2f} | {memory[k]:.0f} |" if k in memory else f"| {k} | {v:.2f} | |"
            for k, v in result.timings.items()
        ]
    else:
        lines += ["", "## Timings", "", "| stage | seconds |", "|---|---|"]
        lines += [f"| {k} | {v:.2f} |" for k, v in result.timings.items()]
    return "\n".join(lines) + "\n"
