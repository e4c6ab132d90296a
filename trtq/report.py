"""report.json (everything, machine-readable) and report.md (one page a person reads) for a run folder."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from trtq.files import write_json, write_text

__all__ = ["write_report", "render_markdown", "accuracy_rows"]


def _pct(v: Any) -> str:
    return "—" if v is None else f"{100 * float(v):.2f}%"


def accuracy_rows(metrics: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """(label, classification/output metrics) rows for FP32, INT8 and the typed graph, as available."""
    rows: list[tuple[str, dict[str, Any]]] = []
    val = metrics.get("validation")
    if not val:
        return rows
    cls = val.get("classification", {})
    first = next(iter(val.get("outputs", {}).values()), {})
    rows.append(
        (
            "FP32 (model.onnx)",
            {
                "top1": cls.get("reference_top1"),
                "top5": cls.get("reference_top5"),
                "agreement": 1.0,
                "cosine": 1.0,
            },
        )
    )
    rows.append(
        (
            "INT8 (model.int8.onnx)",
            {
                "top1": cls.get("candidate_top1"),
                "top5": cls.get("candidate_top5"),
                "agreement": cls.get("top1_agreement"),
                "cosine": first.get("cosine_similarity"),
            },
        )
    )
    typed = metrics.get("typed_graph", {}).get("vs_fp32")
    if typed:
        tcls = typed.get("classification", {})
        tfirst = next(iter(typed.get("outputs", {}).values()), {})
        rows.append(
            (
                "INT8+FP16 typed (model.trt.onnx)",
                {
                    "top1": tcls.get("candidate_top1"),
                    "top5": tcls.get("candidate_top5"),
                    "agreement": tcls.get("top1_agreement"),
                    "cosine": tfirst.get("cosine_similarity"),
                },
            )
        )
    return rows


def render_markdown(result: Any) -> str:
    m = result.metrics
    lines = ["# trtq build report", ""]
    exp = m.get("export", {})
    lines += [
        f"Model: `{exp.get('source', '?')}` ({exp.get('kind', '?')}, opset {exp.get('opset', '?')}, "
        f"{exp.get('nodes', '?')} nodes).",
        "",
    ]
    rows = accuracy_rows(m)
    if rows:
        val = m.get("validation", {})
        lines += [
            f"## Accuracy ({val.get('samples', '?')} samples of {val.get('data', 'eval')} data, "
            "ONNX Runtime executing Q/DQ as written)",
            "",
            "| model | top-1 | top-5 | top-1 agreement with FP32 | cosine vs FP32 |",
            "|---|---|---|---|---|",
        ]
        for label, r in rows:
            cos = "—" if r.get("cosine") is None else f"{float(r['cosine']):.5f}"
            lines.append(
                f"| {label} | {_pct(r.get('top1'))} | {_pct(r.get('top5'))} | {_pct(r.get('agreement'))} | {cos} |"
            )
        lines.append("")
    cal = m.get("calibration")
    if cal:
        lines += [
            "## Calibration",
            "",
            f"Method: **{cal.get('method')}** over {cal.get('samples', '?')} samples, "
            f"{cal.get('tensors')} activation tensors.",
            "",
        ]
        scores = m.get("method_scores")
        if scores:
            keys = sorted({k for v in scores.values() if isinstance(v, dict) for k in v})
            lines += [
                "Fidelity of each method's Q/DQ model to FP32 on held-out data (the chosen one is in bold):",
                "",
                "| method | " + " | ".join(keys) + " |",
                "|---|" + "---|" * len(keys),
            ]
            for meth, sc in scores.items():
                name = f"**{meth}**" if meth == cal.get("method") else meth
                cells = [
                    f"{sc.get(k):.6g}" if isinstance(sc, dict) and sc.get(k) is not None else "—"
                    for k in keys
                ]
                lines.append(f"| {name} | " + " | ".join(cells) + " |")
            lines.append("")
        pngs = [name for name in result.artifacts if name.endswith(".png") and name.startswith("calib")]
        for name in pngs:
            lines += [f"![{name}]({name})", ""]
    pl = m.get("placement")
    if pl:
        lines += [
            "## Q/DQ placement",
            "",
            f"{pl['quantized_nodes']} weighted layers quantized; {pl['activation_qdq']} activation and "
            f"{pl['weight_qdq']} weight Q/DQ pairs.",
            "",
        ]
        if pl["skipped"]:
            lines += ["Not quantized:", "", "| node | op | rule | reason |", "|---|---|---|---|"]
            for s in pl["skipped"][:40]:
                lines.append(f"| `{s['node']}` | {s['op_type']} | {s['rule']} | {s['reason']} |")
            if len(pl["skipped"]) > 40:
                lines.append(f"| … {len(pl['skipped']) - 40} more in report.json | | | |")
            lines.append("")
    for title, body in result.sections:
        lines += [f"## {title}", "", body.rstrip(), ""]
    lines += ["## Engine", "", result.engine_status or "not attempted", ""]
    lines += ["## Artifacts", "", "| file | |", "|---|---|"]
    for name in result.artifacts:
        lines.append(f"| [{name}]({name}) | |")
    lines += ["", "## Timings", "", "| stage | seconds |", "|---|---|"]
    for k, v in result.timings.items():
        lines.append(f"| {k} | {v:.2f} |")
    return "\n".join(lines) + "\n"


def write_report(result: Any, folder: Path) -> None:
    """Write report.json and report.md into `folder` (atomically)."""
    result.timings = dict(result.timings)
    write_json(Path(folder) / "report.json", result.to_json())
    write_text(Path(folder) / "report.md", render_markdown(result))
