"""The analysis ``params``, declared once (worker/pipeline/params.py's Param/ParamsSchema): read by
:func:`worker.pipeline.analysis.analyze`, and by whatever later accepts an analysis request (the web's
submit check), without loading numpy or scipy. docs/analysis.md explains each one and its default.
"""

from __future__ import annotations

from worker.pipeline.params import Param, ParamsSchema

FILTERS = ("butterworth", "one_euro", "none")
STANCES = ("unknown", "regular", "goofy")

PARAMS = ParamsSchema(
    {
        "min_visibility": Param(float, 0.5, lo=0.0, hi=1.0,
                                doc="a keypoint whose visibility is below this is not trusted (treated as missing)"),
        "max_gap_s": Param(float, 0.25, lo=0.0, hi=10.0,
                           doc="interior gaps (missing, untrusted or outlier samples) up to this long are filled "
                               "by interpolation and marked; longer ones stay missing (null)"),
        "hampel_window": Param(int, 7, lo=0, hi=100,
                               doc="Hampel outlier rejection: half-window in frames (0: off)"),
        "hampel_sigmas": Param(float, 3.0, lo=0.5, hi=100.0,
                               doc="Hampel: a sample further than this many robust standard deviations from "
                                   "its window's median is an outlier"),
        "filter": Param(str, "butterworth", choices=FILTERS,
                        doc="low-pass filter of the keypoint series: zero-lag Butterworth (filtfilt), "
                            "one-euro (causal, adaptive) or none"),
        "cutoff_hz": Param(float, 6.0, lo=0.1, hi=1000.0,
                           doc="Butterworth cut-off frequency in Hz (capped below the Nyquist frequency of "
                               "the video's fps)"),
        "order": Param(int, 2, lo=1, hi=8,
                       doc="Butterworth order of one pass (filtfilt runs it forwards and backwards)"),
        "one_euro_min_cutoff": Param(float, 1.0, lo=0.001, hi=1000.0, doc="one-euro: minimum cut-off in Hz"),
        "one_euro_beta": Param(float, 0.05, lo=0.0, hi=1000.0, doc="one-euro: speed coefficient"),
        "stance": Param(str, "unknown", choices=STANCES,
                        doc="the rider's stance: spins are named frontside/backside for regular or goofy, "
                            "left/right when unknown"),
        "spin_min_degrees": Param(float, 150.0, lo=1.0, hi=100_000.0,
                                  doc="the least rotation in one direction counted as a spin"),
        "spin_reversal_degrees": Param(float, 60.0, lo=1.0, hi=360.0,
                                       doc="a turn back by more than this ends a rotation (smaller wobbles do not)"),
        "spin_min_rate_dps": Param(float, 90.0, lo=0.0, hi=100_000.0,
                                   doc="the least mean rotation speed of a spin, degrees per second "
                                       "(slower turning is carving, not spinning)"),
    }
)
