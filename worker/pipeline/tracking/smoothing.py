"""Temporal landmark smoothing for video mode, as MediaPipe's ``pose_landmark_filtering`` graph does it.

Raw per-frame landmarks jitter by a pixel or two; MediaPipe runs every coordinate through a one-euro
filter (a low-pass whose cutoff rises with speed, so still poses are smoothed hard and fast motion
lags little) and visibility through a fixed low-pass. Velocities are scaled by the inverse body size
in pixels, so the same motion is smoothed the same whether the person is near or far. Three filter
banks run per person:

* the 33 image landmarks (min cutoff 0.05, beta 80) and their visibility (alpha 0.1), switchable;
* the 33 world landmarks (min cutoff 0.1, beta 40, no size scaling: they are already in metres),
  switchable;
* the 2 auxiliary landmarks that place the next frame's region (min cutoff 0.01, beta 10), always on,
  because a steady region is what keeps tracking stable and what keeps us in step with MediaPipe.

The filters are plain numpy over whole arrays (one call per person per frame), not one object per
coordinate.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

#: Below this body size (pixels) MediaPipe passes landmarks through unfiltered.
MIN_OBJECT_SCALE = 1e-6


class LowPassFilter:
    """Exponential smoothing of an array; the first sample passes through and seeds the state."""

    def __init__(self) -> None:
        self.raw: np.ndarray | None = None
        self.state: np.ndarray | None = None

    def __call__(self, value: np.ndarray, alpha: float | np.ndarray) -> np.ndarray:
        out = value if self.state is None else alpha * value + (1.0 - alpha) * self.state
        self.raw = value
        self.state = out
        return out


class OneEuroFilter:
    """One-euro filter (Casiez et al.) over an array, element-wise, with MediaPipe's conventions.

    The sampling rate comes from the timestamps (falling back to ``frequency`` until there are two);
    a timestamp that does not advance returns the input untouched, as MediaPipe does.
    """

    def __init__(self, min_cutoff: float, beta: float, derivate_cutoff: float, frequency: float = 30.0) -> None:
        self.min_cutoff = min_cutoff
        self.beta = beta
        self.derivate_cutoff = derivate_cutoff
        self.frequency = frequency
        self.last_time: float | None = None
        self.x = LowPassFilter()
        self.dx = LowPassFilter()

    def _alpha(self, cutoff: float | np.ndarray) -> float | np.ndarray:
        tau = 1.0 / (2 * math.pi * cutoff)
        return 1.0 / (1.0 + tau * self.frequency)

    def __call__(self, value: np.ndarray, t: float, value_scale: float = 1.0) -> np.ndarray:
        value = np.asarray(value, dtype=np.float64)
        if self.last_time is not None:
            if t <= self.last_time:
                return value
            self.frequency = 1.0 / (t - self.last_time)
        self.last_time = t
        previous = value if self.x.raw is None else self.x.raw  # no speed estimate from one sample
        dvalue = (value - previous) * value_scale * self.frequency
        edvalue = self.dx(dvalue, self._alpha(self.derivate_cutoff))
        cutoff = self.min_cutoff + self.beta * np.abs(edvalue)
        return self.x(value, self._alpha(cutoff))


@dataclass
class SmoothedPose:
    image: np.ndarray
    aux: np.ndarray
    world: np.ndarray


class PoseSmoother:
    """The filter state of one tracked person; create a fresh one whenever tracking restarts."""

    def __init__(self, enabled: bool = True) -> None:
        self.enabled = enabled
        self.image = OneEuroFilter(min_cutoff=0.05, beta=80.0, derivate_cutoff=1.0)
        self.visibility = LowPassFilter()
        self.world = OneEuroFilter(min_cutoff=0.1, beta=40.0, derivate_cutoff=1.0)
        self.aux = OneEuroFilter(min_cutoff=0.01, beta=10.0, derivate_cutoff=1.0)

    def __call__(self, t: float, image: np.ndarray, aux: np.ndarray, world: np.ndarray) -> SmoothedPose:
        """Filter one frame of one person: ``image (33, 5)``, ``aux (2, 3)`` in pixels, ``world (33, 3)``."""
        delta = aux[1, :2] - aux[0, :2]
        object_scale = 2.0 * float(np.hypot(delta[0], delta[1]))  # the unscaled region side, in pixels
        if object_scale < MIN_OBJECT_SCALE:
            return SmoothedPose(image, aux, world)
        value_scale = 1.0 / object_scale
        smoothed_aux = self.aux(aux, t, value_scale)
        if not self.enabled:
            return SmoothedPose(image, smoothed_aux, world)
        smoothed = image.copy()
        smoothed[:, 3] = self.visibility(image[:, 3], 0.1)
        smoothed[:, :3] = self.image(image[:, :3], t, value_scale)
        return SmoothedPose(smoothed, smoothed_aux, self.world(world, t, 1.0))
