"""Schemathesis over every operation of a live `pose-service web` (with a token, so auth is exercised):
no 5xx, and every answer matches /openapi.json (status codes, content types, bodies, headers). Job 1
has succeeded, so the answers checked include a result document against the Result schema (the
coverage phase tries the smallest job id; tests/web/test_openapi.py also checks it explicitly).

Left out: /pose/hybrid (it waits up to a minute for a worker that is not there), and /readyz and
/api/pose/health for the no-5xx check only (without a live worker they answer 503 by design).
"Schema-valid request rejected" is not checked: the schema cannot say which files exist, which
cursors this server issued or what a video file contains, so such requests rightly get 4xx.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.web.conftest import run_job

CHECKS = (
    "status_code_conformance,content_type_conformance,response_schema_conformance,"
    "response_headers_conformance,allow_header_conformance,missing_required_header"
)


def schemathesis(
    server_url: str, token: str, checks: str, *extra: str, cwd: Path
) -> subprocess.CompletedProcess[str]:
    """The schemathesis CLI; ``cwd`` receives its cache directory (.schemathesis/)."""
    binary = Path(sys.executable).with_name("schemathesis")
    return subprocess.run(
        [str(binary), "run", server_url + "/openapi.json", "-H", f"Authorization: Bearer {token}",
         "--checks", checks, "--exclude-path", "/pose/hybrid", "--phases", "coverage,fuzzing",
         "--warnings", "off", "--seed", "1", *extra],
        capture_output=True,
        text=True,
        timeout=180,
        cwd=cwd,
    )


@pytest.mark.skipif(
    not Path(sys.executable).with_name("schemathesis").exists() and shutil.which("schemathesis") is None,
    reason="schemathesis is not installed",
)
def test_every_operation_conforms_and_never_answers_5xx(start_server, web_store, media_root, tmp_path) -> None:
    job, _ = web_store.submit(str(media_root / "video.mp4"))
    run_job(web_store)
    assert job.id == 1
    server = start_server(env={"POSE_API_TOKENS": "st-token", "POSE_MEDIA_ROOTS": str(media_root)})
    conform = schemathesis(server.url, "st-token", CHECKS, "--max-time", "40", cwd=tmp_path)
    assert conform.returncode == 0, conform.stdout[-6000:]
    no_5xx = schemathesis(
        server.url,
        "st-token",
        "not_a_server_error",
        "--exclude-path",
        "/readyz",
        "--exclude-path",
        "/api/pose/health",
        "--max-time",
        "40",
        cwd=tmp_path,
    )
    assert no_5xx.returncode == 0, no_5xx.stdout[-6000:]
    assert "Traceback" not in server.log()
