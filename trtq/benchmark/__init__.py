"""Latency benchmarks: one harness for ONNX files on ONNX Runtime (CPU) and TensorRT engines (GPU).

For every artifact and batch size: warm-up runs, then timed runs; min / median / mean / p90 / p95 / p99
latency and throughput; a table, a PNG plot and bench.json.

* ONNX Runtime (`.onnx`): wall clock (`time.perf_counter`) around each `session.run`, on the CPU, Q/DQ
  executed as written (like TensorRT), so a user without a GPU can compare ONNX files. It says nothing
  about TensorRT speed.
* TensorRT (`.plan`, `.engine`, `.trt`): CUDA events recorded on the runner's non-default stream around
  each inference; host<->device copies (pinned memory) inside the timed region unless
  `include_copies=False`; optionally the inference is captured once in a CUDA graph and replayed
  (`cuda_graph=True`).

Which timing a runner gets comes from its interface (`BaseRunner.cuda_steps()`), not from its type.

Modules: `settings` (BenchSettings, parse_batches, latency_stats), `timing` (the loops), `present`
(render_table, plot_bench), `harness` (bench). Runners come from `trtq.runners.make_runner`.
"""

from trtq.benchmark.harness import TIMING, bench, default_out_dir, host_info, random_feed
from trtq.benchmark.present import display_names, plot_bench, print_table, render_table
from trtq.benchmark.settings import BenchSettings, latency_stats, parse_batches
from trtq.benchmark.timing import time_cuda, time_host, time_runner, timing_loop

__all__ = [
    "BenchSettings",
    "latency_stats",
    "parse_batches",
    "bench",
    "random_feed",
    "host_info",
    "TIMING",
    "timing_loop",
    "time_host",
    "time_cuda",
    "time_runner",
    "render_table",
    "print_table",
    "display_names",
    "plot_bench",
    "default_out_dir",
]
