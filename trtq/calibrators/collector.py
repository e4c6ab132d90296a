"""Streaming per-tensor statistics and |x| histograms that every calibration method reads.

One `HistogramCollector` sees each batch once; every method (minmax, entropy, percentile, mse) computes its
amax from the same collected state, so comparing methods costs one pass over the data.

Binning scheme (exact, order-free): each tensor keeps a *fine* histogram of |x| with `fine_bins` bins
(a power of two, 65536 by default) of width 2**e, where e is the smallest integer with
max|x| < fine_bins * 2**e. A bin index is floor(|x| * 2**-e); multiplying by a power of two is exact in
floating point, so the index is exact. When a later batch has a larger max|x|, e grows by m and every
2**m adjacent bins merge into one; floor(floor(v / 2**m)) == floor(v / 2**(e+m)), so the merged
histogram is bit-for-bit the histogram the data would have had with the final width from the start. The
fine histogram therefore depends only on the multiset of values seen, never on batch size or order, and
no late range doubling leaves bins empty: max|x| always lies in the upper half of the fine range.

Methods that search thresholds (entropy, mse) work on a *coarse* histogram of about `num_bins` bins
(2048 by default): c = ceil(k / num_bins) fine bins merged per coarse bin, where k is the number of fine
bins up to the one holding max|x|. Because max|x| is in the upper half of the fine range, the coarse
histogram has between 0.94 * num_bins and num_bins bins (for fine_bins = 32 * num_bins), covering
[0, max|x|] up to less than one coarse bin, again exactly (whole fine bins merged).

Memory is tensors x fine_bins x 8 bytes (512 KiB per tensor by default), independent of the sample count.
"""

from __future__ import annotations

import math
import os
from collections.abc import Collection, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np

from trtq.calibrators._kernels import fold_block
from trtq.errors import TrtqError, UsageError

__all__ = ["HistogramCollector", "TensorHistogram", "CoarseHistogram", "NonFiniteActivation"]

#: Elements whose extremes are taken at a time; a tensor this large is folded in its own thread.
_CHUNK = 1 << 18


class NonFiniteActivation(TrtqError):
    """An activation contains NaN or Inf, so no finite amax exists."""

    def __init__(self, tensor: str, batch_index: int | None = None) -> None:
        where = f" in calibration batch {batch_index}" if batch_index is not None else ""
        super().__init__(
            f"activation {tensor!r} contains NaN or Inf{where}; check the calibration data "
            "(normalisation, dtype) and the model before calibrating"
        )
        self.tensor = tensor
        self.batch_index = batch_index


@dataclass(frozen=True)
class CoarseHistogram:
    """About `num_bins` bins of |x| over [0, len(counts) * bin_width]; bin j covers [j*w, (j+1)*w)."""

    counts: np.ndarray
    bin_width: float

    @property
    def edges(self) -> np.ndarray:
        return np.arange(len(self.counts) + 1, dtype=np.float64) * self.bin_width

    @property
    def centers(self) -> np.ndarray:
        return (np.arange(len(self.counts), dtype=np.float64) + 0.5) * self.bin_width


@dataclass
class TensorHistogram:
    """Everything collected for one tensor: running moments, extremes and the fine |x| histogram."""

    name: str
    count: int = 0
    nonzero: int = 0
    min: float = math.inf
    max: float = -math.inf
    sum: float = 0.0
    sumsq: float = 0.0
    fine: np.ndarray | None = field(default=None, repr=False)
    exponent: int | None = None  # fine bin width = 2**exponent
    _pending_zeros: int = field(default=0, repr=False)

    @property
    def absmax(self) -> float:
        """max |x| seen (0.0 before any data or for an all-zero tensor)."""
        if self.count == 0:
            return 0.0
        return float(max(-self.min, self.max, 0.0))

    @property
    def fine_width(self) -> float:
        return 0.0 if self.exponent is None else math.ldexp(1.0, self.exponent)

    @property
    def mean(self) -> float:
        return self.sum / self.count if self.count else 0.0

    @property
    def std(self) -> float:
        if not self.count:
            return 0.0
        var = self.sumsq / self.count - self.mean**2
        return math.sqrt(max(var, 0.0))

    def coarse(self, num_bins: int = 2048) -> CoarseHistogram:
        """Merge whole fine bins into at most `num_bins` bins that reach just past max|x|."""
        if self.fine is None:
            return CoarseHistogram(np.zeros(0, dtype=np.int64), 0.0)
        nz = np.flatnonzero(self.fine)
        k = int(nz[-1]) + 1
        per = -(-k // num_bins)
        nb = -(-k // per)
        fine = self.fine[: nb * per]
        if len(fine) < nb * per:
            fine = np.concatenate([fine, np.zeros(nb * per - len(fine), dtype=fine.dtype)])
        return CoarseHistogram(fine.reshape(nb, per).sum(axis=1), per * self.fine_width)

    def quantile(self, q: float) -> float:
        """The q-quantile of |x| (0 <= q <= 1) as numpy.percentile defines it (linear between order statistics).

        Each order statistic is read as the upper edge of the fine bin that holds it (capped at max|x|),
        so the result is at most one fine bin above numpy's value, and never below it.
        """
        if self.fine is None:
            return 0.0
        cum = np.cumsum(self.fine)
        n = int(cum[-1])
        rank = q * (n - 1)
        k = min(int(math.floor(rank)), n - 1)
        frac = rank - k

        def upper_edge(
            order: int,
        ) -> float:  # order statistic `order` (0-based) lies in the first bin with cum > order
            b = int(np.searchsorted(cum, order + 1, side="left"))
            return min((b + 1) * self.fine_width, self.absmax)

        lo = upper_edge(k)
        if frac == 0.0 or k + 1 >= n:
            return lo
        return lo + frac * (upper_edge(k + 1) - lo)


class HistogramCollector:
    """Fold batches of named activations into per-tensor statistics and exact fine |x| histograms.

    Tensors of one batch are folded in parallel threads (numpy releases the GIL in the heavy loops); each
    tensor is handled by one thread, so the result does not depend on the number of threads.

    Args:
        fine_bins: bins of the fine histogram per tensor; a power of two (default 65536 = 32 x 2048).
        histograms: keep histograms (False keeps only min/max/moments, which is all minmax needs).
        workers: threads folding tensors (default: the CPU count, at most 8; 1 = no threads).
    """

    def __init__(
        self, fine_bins: int = 1 << 16, *, histograms: bool = True, workers: int | None = None
    ) -> None:
        if fine_bins < 2 or fine_bins & (fine_bins - 1):
            raise UsageError(f"fine_bins must be a power of two >= 2, got {fine_bins}")
        self.fine_bins = int(fine_bins)
        self._log2_bins = self.fine_bins.bit_length() - 1
        self.keep_histograms = histograms
        self.tensors: dict[str, TensorHistogram] = {}
        self.batches = 0
        self.workers = max(1, min(8, os.cpu_count() or 1) if workers is None else int(workers))
        self._pool: ThreadPoolExecutor | None = None

    def __getitem__(self, name: str) -> TensorHistogram:
        return self.tensors[name]

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state["_pool"] = None
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)

    def close(self) -> None:
        """Stop the worker threads (they are also stopped when the collector is garbage collected)."""
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None

    def __del__(self) -> None:
        pool = getattr(self, "_pool", None)
        if pool is not None:
            pool.shutdown(wait=False)

    def collect(
        self,
        tensors: Mapping[str, np.ndarray],
        *,
        batch_index: int | None = None,
        optional: Collection[str] = (),
    ) -> list[str]:
        """Fold one batch (tensor name -> array) into the statistics; the arrays are not kept.

        Args:
            tensors: the batch's activations.
            batch_index: the batch's index, for messages.
            optional: tensors that are wanted but not required: one holding NaN or Inf is dropped from the
                statistics (and returned) instead of failing.

        Returns:
            The tensors of `optional` that held NaN or Inf in this batch, in `tensors` order (now dropped).

        Raises:
            NonFiniteActivation: a tensor not in `optional` holds NaN or Inf (the first such in `tensors` order).
            UsageError: a tensor is not floating point.
        """
        jobs = []
        for name, value in tensors.items():
            rec = self.tensors.get(name)
            if rec is None:
                rec = self.tensors[name] = TensorHistogram(name)
            jobs.append((rec, np.asarray(value)))

        def fold(rec: TensorHistogram, x: np.ndarray) -> bool:
            """Whether `rec` was folded (False: an optional tensor holding NaN/Inf, left unchanged)."""
            try:
                self._fold(rec, x, batch_index)  # checks finiteness before it changes `rec`
            except NonFiniteActivation:
                if rec.name not in optional:
                    raise
                return False
            return True

        big = sum(1 for _, x in jobs if x.size >= _CHUNK)
        if self.workers > 1 and big > 1:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(self.workers, thread_name_prefix="trtq-hist")
            # largest tensors first for a balanced schedule; errors re-raised in `tensors` order
            order = sorted(range(len(jobs)), key=lambda i: -jobs[i][1].size)
            futures = {i: self._pool.submit(fold, *jobs[i]) for i in order}
            for i in range(len(jobs)):
                futures[i].exception()
            folded = [futures[i].result() for i in range(len(jobs))]
        else:
            folded = [fold(rec, x) for rec, x in jobs]
        dropped = [rec.name for (rec, _), ok in zip(jobs, folded) if not ok]
        for name in dropped:
            del self.tensors[name]
        self.batches += 1
        return dropped

    def merge(self, other: HistogramCollector) -> None:
        """Add another collector's statistics (e.g. from another worker's share of the data).

        The result is exactly what one collector would hold after seeing both shares: histograms are
        brought to the larger bin width by the same exact merge the range growth uses, then added.
        """
        if other.fine_bins != self.fine_bins:
            raise UsageError(f"cannot merge collectors with {self.fine_bins} and {other.fine_bins} fine bins")
        for name, theirs in other.tensors.items():
            mine = self.tensors.get(name)
            if mine is None:
                mine = self.tensors[name] = TensorHistogram(name)
            mine.count += theirs.count
            mine.nonzero += theirs.nonzero
            mine.min = min(mine.min, theirs.min)
            mine.max = max(mine.max, theirs.max)
            mine.sum += theirs.sum
            mine.sumsq += theirs.sumsq
            if not self.keep_histograms:
                continue
            mine._pending_zeros += theirs._pending_zeros
            if theirs.fine is not None:
                add = TensorHistogram(name, fine=theirs.fine.copy(), exponent=theirs.exponent)
                if mine.fine is None:
                    mine.fine, mine.exponent = add.fine, add.exponent
                else:
                    e = max(mine.exponent, add.exponent)
                    for rec in (mine, add):
                        if rec.exponent < e:
                            self._grow(rec, e)
                    mine.fine += add.fine
            if mine.fine is not None and mine._pending_zeros:
                mine.fine[0] += mine._pending_zeros
                mine._pending_zeros = 0
        self.batches += other.batches

    def _fold(self, rec: TensorHistogram, x: np.ndarray, batch_index: int | None) -> None:
        if not np.issubdtype(x.dtype, np.floating):
            raise UsageError(
                f"tensor {rec.name!r} is {x.dtype}, not a floating-point activation; only float tensors "
                "can be calibrated (leave it out of the tensor list)"
            )
        if x.dtype == np.float16:
            x = x.astype(np.float32)
        flat = x.reshape(-1)
        n = flat.size
        if n == 0:
            return
        # Two sweeps: the extremes (numpy, over cache-sized chunks; they fix the bin width before any value is
        # binned), then the moments and bins in one compiled loop (`_kernels.fold_block`).
        lo, hi = math.inf, -math.inf
        for start in range(0, n, _CHUNK):
            chunk = flat[start : start + _CHUNK]
            clo, chi = float(chunk.min()), float(chunk.max())  # NaN propagates through numpy's min/max
            if not (math.isfinite(clo) and math.isfinite(chi)):
                raise NonFiniteActivation(rec.name, batch_index)
            lo, hi = min(lo, clo), max(hi, chi)
        rec.count += n
        rec.min = min(rec.min, lo)
        rec.max = max(rec.max, hi)
        absmax = max(-lo, hi)
        binning = self.keep_histograms and absmax > 0.0
        if self.keep_histograms and not binning:
            if rec.fine is None:
                rec._pending_zeros += n
            else:
                rec.fine[0] += n
        if binning:
            # smallest e with absmax < fine_bins * 2**e
            e = math.frexp(absmax)[1] - self._log2_bins
            if rec.fine is None:
                rec.exponent = e
                rec.fine = np.zeros(self.fine_bins, dtype=np.int64)
                rec.fine[0] += rec._pending_zeros
                rec._pending_zeros = 0
            elif e > rec.exponent:
                self._grow(rec, e)
        work = flat
        scale = 0.0
        if binning:
            scale = math.ldexp(1.0, -rec.exponent)
            if flat.dtype == np.float32 and not (1e-37 < scale < 1e37):
                work = flat.astype(np.float64)  # 2**-e not a normal float32: bin in float64 (still exact)
        total, squares, nonzero = fold_block(work, scale, rec.fine if binning else None)
        rec.sum += total
        rec.sumsq += squares
        rec.nonzero += nonzero

    def _grow(self, rec: TensorHistogram, e: int) -> None:
        """Coarsen the fine histogram to width 2**e by merging 2**(e - old) adjacent bins (exact)."""
        m = e - rec.exponent
        merged = np.zeros(self.fine_bins, dtype=np.int64)
        if m >= self._log2_bins:
            merged[0] = rec.fine.sum()
        else:
            group = 1 << m
            merged[: self.fine_bins // group] = rec.fine.reshape(-1, group).sum(axis=1)
        rec.fine = merged
        rec.exponent = e
