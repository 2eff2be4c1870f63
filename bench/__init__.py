"""Benchmarks for pose-service (run them as ``.venv/bin/python bench/<name>.py``; see bench/README.md).

- ``queue_core.py``: queue throughput and pickup latency of real worker daemons, against a
  procrastinate baseline on the same PostgreSQL.
- ``warm_vs_fresh.py``: per-job overhead of the ``warm`` and ``fresh`` worker modes on a real video.

Results go to ``bench/results/`` (git-ignored).
"""
