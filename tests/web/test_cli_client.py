"""The CLI client over REST (--server, --token) against a real `pose-service web`: submit --wait with
its upload and frames progress, status, result, jobs, cancel, stats, and the exit statuses that tell
success (0), failure (1), cancellation (3) and a refused token (4) apart.

The commands run in this process (``jobs.cli.main``, output captured) to spare an interpreter start
per command; the one that must wait while another cancels its job runs as a real subprocess."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from jobs import api_tokens
from jobs.cli import main
from jobs.states import ErrorKind
from tests.conftest import REPO
from tests.web.conftest import VIDEO, LiveServer, ThreadWorker, result_document, sql

NO_DB = "postgresql://unused@127.0.0.1:1/x"  # over REST the client never needs the database


@pytest.fixture(scope="module")
def server(web_db_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """One open server for the module (tables are emptied before each test all the same)."""
    live = LiveServer(web_db_url, tmp_path_factory.mktemp("cli-server"), {"POSE_LOG_LEVEL": "WARNING"})
    try:
        yield live.wait_ready()
    finally:
        live.stop()


@pytest.fixture
def run(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> Callable[..., tuple[int, str, str]]:
    """``run(*argv)`` -> (exit status, stdout, stderr) of `pose-service *argv`."""
    monkeypatch.setenv("POSE_DATABASE_URL", NO_DB)
    for name in ("POSE_SERVER", "POSE_API_TOKEN", "POSE_API_TOKENS"):
        monkeypatch.delenv(name, raising=False)

    def call(*argv: str) -> tuple[int, str, str]:
        capsys.readouterr()
        status = main(list(argv))
        out, err = capsys.readouterr()
        return status, out, err

    return call


def _succeed(store, job, worker_id) -> None:
    store.record_progress(job, worker_id, 3, 5, 30.0)
    store.succeed(job, worker_id, json.dumps(result_document(frames=5)), 5, 5)


def _fail(store, job, worker_id) -> None:
    store.fail(job, worker_id, ErrorKind.PIPELINE_ERROR, "made to fail", retry_base_s=1, retry_cap_s=1)


def test_submit_wait_succeeds_and_the_inspecting_commands_read_over_rest(server, run, web_store, tmp_path) -> None:
    with ThreadWorker(web_store, _succeed):
        status, out, err = run("submit", str(VIDEO), "--server", server.url, "--wait")
    assert status == 0, err
    assert f"upload {VIDEO.name}" in err and f"sent {VIDEO.stat().st_size}/" in err  # the upload bar
    assert "job 1 succeeded" in err and "5/5 frames" in err  # then the frames bar
    status, out, _ = run("status", "1", "--server", server.url)
    assert status == 0 and json.loads(out)["state"] == "succeeded"
    path = tmp_path / "r.json"
    status, _, err = run("result", "1", "--server", server.url, "-o", str(path), "--frames", "1:3")
    assert status == 0, err
    assert [f["index"] for f in json.loads(path.read_text())["frames"]] == [1, 2]
    status, out, _ = run("result", "1", "--server", server.url, "--format", "ndjson")
    assert status == 0 and len(out.splitlines()) == 5
    status, out, _ = run("jobs", "--server", server.url)
    assert status == 0 and "succeeded" in out and "upload 1" in out
    status, out, _ = run("stats", "--server", server.url)
    assert status == 0 and "SUBMIT" in out
    assert run("result", "7", "--server", server.url)[0] == 1  # no such job
    status, _, err = run("cancel", "1", "--server", server.url)
    assert status == 1 and "HTTP 409" in err  # already final


def test_submit_wait_exits_1_when_the_job_fails(server, run, web_store) -> None:
    with ThreadWorker(web_store, _fail):
        status, _, err = run("submit", str(VIDEO), "--server", server.url, "--wait")
    assert status == 1, err
    assert "pipeline_error: made to fail" in err


def test_cancel_over_rest_and_submit_wait_exits_3(server, run, web_db_url) -> None:
    waiting = subprocess.Popen(
        [sys.executable, "-m", "jobs.cli", "submit", str(VIDEO), "--server", server.url, "--wait"],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={"PATH": "/usr/bin:/bin", "POSE_DATABASE_URL": NO_DB, "HOME": str(Path.home())},
    )
    try:
        deadline = time.monotonic() + 30
        while not sql(web_db_url, "SELECT id FROM pose_jobs") and time.monotonic() < deadline:
            time.sleep(0.05)
        status, out, err = run("cancel", "1", "--server", server.url)
        assert status == 0 and "job 1 cancelled" in out, err
        _, err = waiting.communicate(timeout=30)
    finally:
        waiting.kill()
    assert waiting.returncode == 3, err
    assert "job 1 cancelled" in err
    status, _, err = run("cancel", "1", "--database-url", web_db_url)  # through the database: already final
    assert status == 1 and "already cancelled" in err


def test_a_refused_token_exits_4_and_a_token_sees_only_its_jobs(start_server, run, web_store, web_db_url) -> None:
    _, mine = api_tokens.create_token(web_store, "mine")
    closed = start_server(env={"POSE_API_TOKENS": "operator"})
    status, _, err = run("submit", str(VIDEO), "--server", closed.url, "--token", "operator")
    assert status == 0, err
    for command in (["jobs"], ["status", "1"], ["stats"], ["cancel", "1"], ["result", "1"]):
        status, _, err = run(*command, "--server", closed.url, "--token", "wrong")
        assert status == 4 and "HTTP 401" in err, (command, err)
    status, out, _ = run("jobs", "--server", closed.url, "--token", mine)
    assert status == 0 and "upload" not in out  # job 1 is the operator's
    assert run("status", "1", "--server", closed.url, "--token", mine)[0] == 1  # another owner's: 404
    assert run("cancel", "1", "--server", closed.url, "--token", mine)[0] == 1
    assert sql(web_db_url, "SELECT state FROM pose_jobs WHERE id = 1") == [("queued",)]
