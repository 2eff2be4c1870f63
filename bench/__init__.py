"""Benchmarks for pose-service (run them as ``.venv/bin/python bench/<name>.py``; see bench/README.md).

- ``queue_core.py``: queue throughput and pickup latency of real worker daemons, against a
  procrastinate baseline on the same PostgreSQL.
- ``warm_vs_fresh.py``: per-job overhead of the ``warm`` and ``fresh`` worker modes on a real video.
- ``web_load.py``: REST submit and status-read throughput under 50 concurrent clients.
- ``pipeline_fps.py``: pose frames/s end to end, against MediaPipe's own runtime.
- ``tensor_parity.py``: how far float32 evaluations of the BlazePose graphs are from each other.

Results go to ``bench/results/`` (git-ignored).
"""
