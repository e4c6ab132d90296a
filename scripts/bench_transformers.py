"""Benchmark (not a test): INT8 on a BERT with injected outlier channels, with and without SmoothQuant and the FP16
fallback, as `trtq.build` runs it on the CPU (ONNX Runtime, Q/DQ as written).

The model is tests/transformer_models.py's Hugging Face BERT (2 layers, hidden 64, random init, saved to a folder
and loaded through `--model FOLDER`); channels 3 and 17 of its LayerNorms get a 40x gain. Calibration and
evaluation are 64 padded random sentences each. Printed: mean (min-max) over seeds of the cosine similarity of
`last_hidden_state` to FP32 and the agreement of each sentence's 10 nearest neighbours (mean-pooled
`last_hidden_state`), the FP32 layers the fallback kept, and wall time as a ratio to the plain INT8 build.

    python scripts/bench_transformers.py [--seeds 3] [--outliers 40]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.transformer_models import hf_bert_folder, token_data  # noqa: E402

NEIGHBOURS = "neighbour_overlap@last_hidden_state"
COSINE = "cosine@last_hidden_state"

CONFIGS = {
    "INT8 (minmax)": {"calib": "minmax"},
    "INT8 (entropy)": {"calib": "entropy"},
    "INT8 + SmoothQuant 0.5": {"calib": "minmax", "smoothquant": 0.5},
    "INT8 + SmoothQuant 0.8": {"calib": "minmax", "smoothquant": 0.8},
    "INT8 + --max-drop 5": {"calib": "minmax", "max_drop": 5.0},
    "INT8 + SmoothQuant 0.5 + --max-drop 5": {"calib": "minmax", "smoothquant": 0.5, "max_drop": 5.0},
}


def run(seeds: int, outliers: float, only: list[str] | None = None) -> None:
    import trtq
    from trtq.config.sections import ValidationConfig

    rows: dict[str, list[tuple[float, float, int, float]]] = {"INT8, no outliers (minmax)": []}
    rows.update({k: [] for k in CONFIGS})
    if only:
        rows = {k: v for k, v in rows.items() if k == "INT8 (minmax)" or any(o in k for o in only)}
    with tempfile.TemporaryDirectory() as tmp:
        for seed in range(seeds):
            calib = token_data(64, padded=True, seed=10 + seed)
            evald = token_data(64, padded=True, seed=20 + seed)
            for i, label in enumerate(rows):
                kw = CONFIGS.get(label, {"calib": "minmax"})
                gain = 0.0 if label.startswith("INT8, no outliers") else outliers
                folder = Path(tmp) / f"bert_{seed}_{gain:g}"
                if not folder.exists():
                    hf_bert_folder(folder, outliers=gain, seed=seed)
                start = time.perf_counter()
                res = trtq.build(str(folder), calib, Path(tmp) / f"run_{seed}_{i}", eval_data=evald,
                                 metric=NEIGHBOURS, validation=ValidationConfig(metrics=(COSINE,)),
                                 build_engine=False, **kw)  # fmt: skip
                wall = time.perf_counter() - start
                int8 = res.validation.to_json()["models"]["int8"]
                choice = res.sensitivity.fallback if res.sensitivity is not None else None
                rows[label].append((int8[COSINE], int8[NEIGHBOURS], len(choice.nodes) if choice else 0, wall))
    for label, vals in rows.items():
        print(f"{label}: per seed " + ", ".join(f"cos {v[0]:.4f} nn {v[1]:.4f} fp16 {v[2]}" for v in vals),
              file=sys.stderr)  # fmt: skip
    base = np.mean([r[3] for r in rows["INT8 (minmax)"]])
    print(
        f"BERT 2x64, outlier channels x{outliers:g}, {seeds} seeds, 64 padded sentences (ONNX Runtime CPU)\n"
    )
    print(
        "| model | cosine of last_hidden_state vs FP32 | 10-NN overlap vs FP32 | layers kept FP16 | time vs INT8 |"
    )
    print("|---|---|---|---|---|")
    print("| FP32 | 1.0000 | 100.0% | - | - |")
    for label, vals in rows.items():
        c, n, f = [v[0] for v in vals], [v[1] for v in vals], [v[2] for v in vals]
        t = np.mean([v[3] for v in vals]) / base
        print(f"| {label} | {np.mean(c):.4f} ({min(c):.4f}-{max(c):.4f}) | {100 * np.mean(n):.1f}% "
              f"({100 * min(n):.1f}-{100 * max(n):.1f}) | {np.mean(f):.1f} | {t:.2f}x |")  # fmt: skip


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--outliers", type=float, default=40.0)
    p.add_argument("--only", action="append", help="rows whose label contains this text (repeatable)")
    a = p.parse_args()
    run(a.seeds, a.outliers, a.only)
