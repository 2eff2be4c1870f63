"""Series of one track over time: untrusted samples out, outliers out, short gaps filled, low-pass.

Every function takes a float array ``x`` of shape (T, N): T frames (equally spaced, one per frame
index), N independent columns (coordinates); a missing sample is NaN. Nothing here knows about
keypoints or angles. :func:`clean` chains the steps the analysis applies, in order:

1. outliers: :func:`hampel` on the residual from a Butterworth low-pass of the series (so that fast
   but smooth motion, a spin, is not taken for outliers as a plain Hampel on the positions takes it):
   a residual further than ``n_sigmas`` robust standard deviations (1.4826 × MAD) from the median of
   its window (``half_window`` frames each side) marks its sample (a point at a time: see ``groups``),
   which is then treated as missing;
2. :func:`fill_gaps`: interior runs of NaN (missing, untrusted or outlier samples) up to ``max_gap``
   frames are filled by linear interpolation and reported, longer runs and the ends stay NaN (an
   outlier that cannot be interpolated takes the low-pass's value);
3. :func:`butterworth` (zero lag: the filter runs forwards and backwards, scipy's ``sosfiltfilt``, on
   each stretch without NaN) or :func:`one_euro` (causal and adaptive), or nothing.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

FloatArray = NDArray[np.float64]
BoolArray = NDArray[np.bool_]

#: The low-pass that outliers are measured from cuts off at this many times the smoothing's cut-off:
#: it must follow fast real motion (a spin) closely, and only spikes stand out of it.
TREND_CUTOFF_FACTOR = 2.0

#: Robust standard deviation of a normal distribution from its median absolute deviation.
MAD_TO_SIGMA = 1.4826


def runs(valid: BoolArray) -> list[tuple[int, int]]:
    """The ``[start, stop)`` stretches where ``valid`` (1-D) is true."""
    padded = np.concatenate(([False], valid, [False])).astype(np.int8)
    edges = np.flatnonzero(np.diff(padded))
    return [(int(a), int(b)) for a, b in zip(edges[::2], edges[1::2], strict=True)]


#: Frames per block of the Hampel identifier (bounds its working memory whatever the track's length).
HAMPEL_BLOCK = 2048


def hampel(x: FloatArray, half_window: int, n_sigmas: float, floor: float = 0.0,
           groups: int = 1) -> tuple[BoolArray, FloatArray]:
    """Outliers of ``x`` (T, N) as a (T, N) mask, and the window medians (T, N) that replace them; NaN is
    never an outlier and is ignored in windows.

    ``floor`` is the least deviation that can be an outlier (in ``x``'s unit), so that a still series,
    whose MAD is nearly 0, does not lose samples to rounding. With ``groups`` > 1 the N columns are
    ``groups`` consecutive blocks of N / groups (the coordinates of one point): a sample that is an
    outlier in one coordinate of its block marks the whole block."""
    t, n = x.shape
    if half_window <= 0 or t < 3:
        return np.zeros(x.shape, dtype=bool), x.copy()
    w = min(half_window, t - 1)
    padded = np.full((t + 2 * w, n), np.nan)
    padded[w:w + t] = x
    out = np.zeros((t, n), dtype=bool)
    median = np.empty((t, n))
    # a block of frames at a time: the windows are (frames, N, 2w+1), 15 times the series, which for a
    # long track would be gigabytes at once
    for first in range(0, t, HAMPEL_BLOCK):
        stop = min(t, first + HAMPEL_BLOCK)
        windows = np.lib.stride_tricks.sliding_window_view(padded[first:stop + 2 * w], 2 * w + 1, axis=0)
        valid_count = np.sum(~np.isnan(windows), axis=2)
        with np.errstate(all="ignore"):
            block_median = _nanmedian_last(windows, valid_count)
            mad = _nanmedian_last(np.abs(windows - block_median[..., None]), valid_count)
            limit = np.maximum(n_sigmas * MAD_TO_SIGMA * mad, floor)
            out[first:stop] = (np.abs(x[first:stop] - block_median) > limit) & (valid_count >= 3)
        median[first:stop] = block_median
    if groups > 1:
        per = n // groups
        out = np.repeat(out.reshape(t, groups, per).any(axis=2), per, axis=1)
    return np.asarray(out, dtype=bool), np.asarray(median, dtype=np.float64)


def _nanmedian_last(windows: FloatArray, valid_count: NDArray[np.intp]) -> FloatArray:
    """Median over the last axis ignoring NaN (NaN where all are), given the count of non-NaN values:
    a plain sort puts NaN last, so the median is in the first ``valid_count`` (np.nanmedian is ten
    times slower on many short windows)."""
    ordered = np.sort(windows, axis=-1)
    last = windows.shape[-1] - 1
    lo = np.clip((valid_count - 1) // 2, 0, last)[..., None]
    hi = np.clip(valid_count // 2, 0, last)[..., None]
    median = 0.5 * (np.take_along_axis(ordered, lo, axis=-1) + np.take_along_axis(ordered, hi, axis=-1))[..., 0]
    return np.where(valid_count > 0, median, np.nan)


def fill_gaps(x: FloatArray, max_gap: int) -> tuple[FloatArray, BoolArray]:
    """``x`` with interior NaN runs of at most ``max_gap`` frames linearly interpolated, and the mask of
    the samples filled. Leading and trailing NaN (before the first or after the last sample) stay."""
    out = x.copy()
    filled = np.zeros(x.shape, dtype=bool)
    if max_gap <= 0:
        return out, filled
    t = np.arange(x.shape[0], dtype=np.float64)
    missing = np.isnan(x)
    for column in np.flatnonzero(missing.any(axis=0)):
        for start, stop in runs(missing[:, column]):
            if start == 0 or stop == x.shape[0] or stop - start > max_gap:
                continue
            # between the known samples on either side (as np.interp would, without searching the
            # whole series for them: a long track has many gaps)
            before, after = x[start - 1, column], x[stop, column]
            slope = (after - before) / (stop - start + 1)
            out[start:stop, column] = slope * (t[start:stop] - (start - 1)) + before
            filled[start:stop, column] = True
    return out, filled


def butterworth_sos(fps: float, cutoff_hz: float, order: int) -> FloatArray:
    """A low-pass Butterworth of ``order`` as second-order sections; the cut-off is kept below 0.9 of the
    Nyquist frequency, whatever was asked."""
    from scipy import signal  # here, not at the top: see _sosfiltfilt

    cutoff = min(cutoff_hz, 0.45 * fps)
    return np.asarray(signal.butter(order, cutoff, btype="lowpass", fs=fps, output="sos"), dtype=np.float64)


def _extend(block: FloatArray, pad: int, fit: int) -> FloatArray:
    """``block`` (L, N) with ``pad`` samples added at each end: the odd reflection (which keeps a trend
    going) about a straight line fitted to the ``fit`` samples at that end rather than about the end
    sample itself, so that the end sample's noise is not pinned into the filtered series."""
    def anchor(end: FloatArray) -> FloatArray:  # the fitted line's value at end[0]
        t = np.arange(end.shape[0], dtype=np.float64)
        slope = np.polyfit(t, end, 1) if end.shape[0] >= 2 else np.zeros((2, end.shape[1]))
        return np.asarray(slope[1] if end.shape[0] >= 2 else end[0], dtype=np.float64)

    first, last = anchor(block[:fit]), anchor(block[::-1][:fit])
    head = 2.0 * first - block[pad:0:-1]
    tail = 2.0 * last - block[-2:-pad - 2:-1]
    return np.concatenate([head, block, tail])


def butterworth(x: FloatArray, fps: float, cutoff_hz: float, order: int = 2) -> FloatArray:
    """Zero-lag low-pass of ``x`` (T, N): each stretch without NaN (found column group by column group)
    filtered forwards and backwards, extended at its ends by :func:`_extend` over about two periods of
    the cut-off. A stretch shorter than 4 frames stays as it is; NaN stays NaN."""
    sos = butterworth_sos(fps, cutoff_hz, order)
    out = x.copy()
    samples_per_period = fps / min(cutoff_hz, 0.45 * fps)
    pad_wanted = max(3 * (2 * len(sos) + 1), int(round(2 * samples_per_period)))
    fit = max(3, int(round(samples_per_period)))
    for columns, valid in _column_groups(x):
        for start, stop in runs(valid):
            length = stop - start
            if length < 4:
                continue
            pad = min(pad_wanted, length - 1)
            block = _extend(x[start:stop][:, columns], pad, min(fit, length))
            out[start:stop, columns] = _sosfiltfilt(sos, block)[pad:pad + length]
    return out


def _sosfiltfilt(sos: FloatArray, block: FloatArray) -> FloatArray:
    """scipy's zero-phase filter along the frames. scipy is imported when a filter first runs, not with
    the module: the worker daemon and the web import this package (for the analysis params and the
    analysed tracks' format) but never filter, and scipy.signal costs each of them about 78 MB."""
    from scipy import signal

    return np.asarray(signal.sosfiltfilt(sos, block, axis=0, padlen=0), dtype=np.float64)


def one_euro(x: FloatArray, fps: float, min_cutoff: float = 1.0, beta: float = 0.05,
             d_cutoff: float = 1.0) -> FloatArray:
    """The one-euro filter (Casiez et al. 2012) on each column of ``x`` (T, N): a first-order low-pass
    whose cut-off rises with the filtered speed (``min_cutoff + beta × |dx/dt|``). Causal, so it lags a
    little on fast motion; restarts after NaN."""
    out = np.full(x.shape, np.nan)
    dt = 1.0 / fps

    def alpha(cutoff: FloatArray | float) -> FloatArray:
        tau = 1.0 / (2.0 * np.pi * np.asarray(cutoff, dtype=np.float64))
        return np.asarray(1.0 / (1.0 + tau / dt), dtype=np.float64)

    a_d = alpha(d_cutoff)
    prev = np.full(x.shape[1], np.nan)
    prev_dx = np.zeros(x.shape[1])
    for i in range(x.shape[0]):
        cur = x[i]
        fresh = np.isnan(prev) & ~np.isnan(cur)
        dx = np.where(fresh, 0.0, (cur - prev) / dt)
        dx_hat = a_d * dx + (1.0 - a_d) * prev_dx
        a = alpha(min_cutoff + beta * np.abs(dx_hat))
        value = np.where(fresh, cur, a * cur + (1.0 - a) * prev)
        out[i] = value
        prev = value  # NaN where cur is NaN: the next sample starts afresh
        prev_dx = np.where(np.isnan(dx_hat), 0.0, dx_hat)
    return out


@dataclass(frozen=True)
class Cleaned:
    """What :func:`clean` made of one series: the raw one (untrusted samples NaN), the filtered one, and
    which samples were rejected as outliers and which were filled."""

    raw: FloatArray
    filtered: FloatArray
    outliers: BoolArray
    filled: BoolArray


def clean(x: FloatArray, fps: float, *, max_gap: int, hampel_window: int, hampel_sigmas: float,
          hampel_floor: float, groups: int, method: str, cutoff_hz: float, order: int,
          one_euro_min_cutoff: float, one_euro_beta: float) -> Cleaned:
    """Outliers, gap filling and the low-pass of the module's docstring, in that order. ``filled`` marks
    the samples that were missing (NaN in ``x``) and were filled; ``outliers`` those replaced."""
    trend = butterworth(fill_gaps(x, max_gap)[0], fps, TREND_CUTOFF_FACTOR * cutoff_hz, order)
    outliers, _ = hampel(x - trend, hampel_window, hampel_sigmas, hampel_floor, groups)
    outliers &= ~np.isnan(x)
    filled_x, filled = fill_gaps(np.where(outliers, np.nan, x), max_gap)
    filled_x = np.where(outliers & np.isnan(filled_x), trend, filled_x)
    filled &= ~outliers
    if method == "butterworth":
        smooth = butterworth(filled_x, fps, cutoff_hz, order)
    elif method == "one_euro":
        smooth = one_euro(filled_x, fps, one_euro_min_cutoff, one_euro_beta)
    elif method == "none":
        smooth = filled_x
    else:
        raise ValueError(f"unknown filter {method!r}")
    return Cleaned(raw=x, filtered=smooth, outliers=outliers, filled=filled)


def _column_groups(x: FloatArray) -> list[tuple[NDArray[np.intp], BoolArray]]:
    """Columns of ``x`` grouped by identical NaN pattern: (column indexes, valid mask) per group."""
    valid = ~np.isnan(x)
    groups: dict[bytes, list[int]] = {}
    for column in range(x.shape[1]):
        groups.setdefault(np.packbits(valid[:, column]).tobytes(), []).append(column)
    return [(np.asarray(cols, dtype=np.intp), valid[:, cols[0]]) for cols in groups.values()]


def jitter(x: FloatArray) -> float:
    """Frame-to-frame jitter of a series (T,) or (T, N): the mean absolute distance of each sample from
    the midpoint of its two neighbours (half the second difference), so steady motion counts for nothing
    and noise does; NaN samples are left out."""
    residual = np.abs(x[1:-1] - 0.5 * (x[:-2] + x[2:]))
    return float(np.nanmean(residual))
