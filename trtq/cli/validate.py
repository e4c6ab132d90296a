"""`trtq validate`: compare a candidate artifact with a reference on the same data (Polygraphy Comparator)."""

from __future__ import annotations

import argparse
from pathlib import Path

from trtq.cli._common import emit
from trtq.cli._options import add_preprocess_args, preprocess_from

NAME = "validate"
HELP = "compare an engine or ONNX with a reference (e.g. FP32 ONNX) on data: output error, top-1, pass/fail"
DESCRIPTION = (
    "Run --model and --reference on the same inputs through Polygraphy's Comparator. .onnx files run in ONNX "
    "Runtime on the CPU (Q/DQ executed as written); .plan/.engine files run in TensorRT on the GPU. Reports "
    "per-output error, cosine similarity, top-1 agreement (and top-1/top-5 accuracy when the data has "
    "labels) and exits 1 when the outputs differ beyond --rtol/--atol."
)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", "-m", required=True, help="candidate: .plan/.engine or .onnx")
    p.add_argument("--reference", "-r", required=True, help="reference: usually the FP32 model.onnx")
    p.add_argument(
        "--data", "-d", required=True, help="image folder (class sub-folders give labels) or .npy/.npz"
    )
    p.add_argument("--samples", type=int, default=0, help="reproducible subset of the data (0 = all)")
    p.add_argument("--batch-size", type=int, default=8, help="batch size (within the engine's profile)")
    p.add_argument("--rtol", type=float, default=5e-2, help="relative tolerance (default 0.05)")
    p.add_argument("--atol", type=float, default=5e-2, help="absolute tolerance (default 0.05)")
    p.add_argument(
        "--check-error-stat",
        default="median",
        choices=["elemwise", "max", "mean", "median", "quantile"],
        help="which error statistic must be within tolerance (Polygraphy; default median)",
    )
    p.add_argument("--out", "-o", help="write the result as JSON to this file")
    p.add_argument("--force", action="store_true", help="overwrite --out")
    p.add_argument("--seed", type=int, default=0)
    add_preprocess_args(p)


def _input_name(path: Path) -> tuple[str, int | None]:
    """The single input of an artifact and its channel count when static."""
    from trtq.errors import UsageError
    from trtq.runners import make_runner

    if path.suffix.lower() == ".onnx":
        from trtq.engines.profiles import onnx_input_shapes

        inputs = {k: v for k, v in onnx_input_shapes(path).items()}
    else:
        with make_runner(path) as r:
            inputs = {k: list(shape) for k, (_, shape) in r.input_metadata().items()}
    if len(inputs) != 1:
        raise UsageError(f"{path} has {len(inputs)} inputs; trtq validate feeds models with one input")
    name, dims = next(iter(inputs.items()))
    channels = dims[1] if len(dims) == 4 and isinstance(dims[1], int) and dims[1] > 0 else None
    return name, channels


def run(args: argparse.Namespace) -> int:
    from trtq._io import check_writable, write_json
    from trtq.data import load_data
    from trtq.runners import make_runner
    from trtq.validate import compare

    model, reference = Path(args.model), Path(args.reference)
    if args.out:
        check_writable(args.out, args.force)
    input_name, channels = _input_name(reference if reference.suffix.lower() == ".onnx" else model)
    if args.channels is None and channels in (1, 3):
        args.channels = channels
    data = load_data(
        args.data, preprocess_from(args), limit=args.samples or None, seed=args.seed, what="--data"
    )

    def side(path: Path) -> object:
        return str(path) if path.suffix.lower() == ".onnx" else make_runner(path)

    result = compare(
        side(model),
        side(reference),
        data,
        input_name=input_name,
        batch_size=args.batch_size,
        rtol=args.rtol,
        atol=args.atol,
        check_error_stat=args.check_error_stat,
    )
    doc = {"model": str(model), "reference_artifact": str(reference), **result.to_json()}
    if args.out:
        write_json(args.out, doc)
    lines = [f"{model.name} vs {reference.name} on {result.samples} samples"]
    for name, m in result.outputs.items():
        lines.append(
            f"  {name}: max abs {m['max_abs_error']:.4g}, median abs {m['median_abs_error']:.4g}, "
            f"cosine {m['cosine_similarity']:.5f}"
        )
    for k, v in result.classification.items():
        lines.append(f"  {k}: {100 * v:.2f}%")
    verdict = "PASS" if result.polygraphy_pass else "FAIL"
    lines.append(f"{verdict} at rtol {args.rtol}, atol {args.atol} ({args.check_error_stat} error)")
    emit(args, doc, "\n".join(lines))
    return 0 if result.polygraphy_pass else 1
