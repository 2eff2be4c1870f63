"""The long-lived processes (the worker daemon, the web) stay small: what only a pipeline child needs
(torch and OpenCV for the pose model, scipy for the analysis' filters) is never imported by them."""

from __future__ import annotations

import subprocess
import sys


def test_the_worker_daemon_and_the_web_import_no_child_libraries() -> None:
    code = ("import sys, worker.daemon, web.app, jobs.cli.worker, jobs.cli.web\n"
            "print(sorted(m for m in ('torch', 'cv2', 'scipy') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120)
    assert out.stdout.strip() == "[]", out.stdout + out.stderr
