"""jobs/cli/progress.py, the one progress display of `submit --wait`, `demo` and `run`."""

from __future__ import annotations

import io
from typing import Any

from jobs.cli.progress import FrameProgress, follow_job


def job(state: str, done: int, total: int | None, error: Any = None) -> dict[str, Any]:
    return {"id": 4, "state": state, "progress": {"frames_done": done, "frames_total": total},
            "attempts": {"attempt": 1, "max_attempts": 3}, "timings": {"wait_s": 0.5, "run_s": 2.0}, "error": error}


def test_plain_output_is_one_line_per_description_and_the_last_state() -> None:
    out = io.StringIO()
    with FrameProgress("pose", stream=out) as shown:
        for done in range(9):
            shown.update(done, 8)
    assert out.getvalue() == "pose 0/8 frames   0.0%\npose 8/8 frames 100.0%\n"


def test_quiet_shows_nothing_even_on_a_terminal() -> None:
    out = io.StringIO()
    with FrameProgress("pose", stream=out, enabled=False, live=True) as shown:
        shown.update(3, None)
    assert out.getvalue() == ""


def test_a_terminal_gets_a_live_bar_that_ends_on_the_last_update() -> None:
    out = io.StringIO()
    with FrameProgress("pose", stream=out, live=True) as shown:
        shown.update(0, None)
        shown.update(4, 8, detail="attempt 1/3")
    text = out.getvalue()
    assert "━" in text and "4/8 frames" in text and " 50%" in text and "attempt 1/3" in text


def test_follow_job_polls_until_final_and_prints_each_state_once() -> None:
    seen = iter([job("queued", 0, None), job("running", 2, 5), job("running", 4, 5),
                 job("failed", 4, 5, {"kind": "timeout", "message": "slow"})])
    out = io.StringIO()
    last = follow_job(lambda: next(seen), poll_s=0, progress=FrameProgress(stream=out))
    assert last["state"] == "failed"
    assert out.getvalue().splitlines() == [
        "job 4 queued 0/? frames    - % attempt 1/3 0.5 s",
        "job 4 running 2/5 frames  40.0% attempt 1/3 2.0 s",
        "job 4 failed 4/5 frames  80.0% attempt 1/3 2.0 s",
    ]


def test_follow_job_gives_up_at_its_timeout() -> None:
    calls = []

    def fetch() -> dict[str, Any]:
        calls.append(1)
        return job("queued", 0, None)

    assert follow_job(fetch, poll_s=0, timeout_s=0, progress=FrameProgress(stream=io.StringIO()))["state"] == "queued"
    assert len(calls) == 1
