"""Processes that must not outlive the process that started them.

A pipeline child whose worker died would keep a GPU busy on a job already handed to someone else; a
worker whose `pose-service serve` died would keep claiming jobs nobody supervises. Linux delivers a
chosen signal when the parent dies (PR_SET_PDEATHSIG), even when it was killed with -9. Launchers
put their pid in POSE_PARENT_PID; the started process arms the signal at start-up.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys

PARENT_PID_ENV = "POSE_PARENT_PID"
_PR_SET_PDEATHSIG = 1


def parent_env() -> dict[str, str]:
    """The environment entry a launcher gives the processes that must die with it."""
    return {PARENT_PID_ENV: str(os.getpid())}


def die_with_parent(sig: signal.Signals) -> None:
    """Receive ``sig`` when the launcher named in POSE_PARENT_PID dies (no-op outside Linux or
    when not started by such a launcher)."""
    declared = os.environ.get(PARENT_PID_ENV)
    if declared is None or not sys.platform.startswith("linux"):
        return
    ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, int(sig))
    if os.getppid() != int(declared):  # the launcher died before the signal was armed
        os.kill(os.getpid(), sig)
