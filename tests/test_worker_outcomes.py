"""What the worker records for each way an attempt can end, with real child processes."""

from __future__ import annotations

from jobs.states import JobState
from jobs.store import JobStore
from tests.conftest import wait_for


def finished(store: JobStore, job_id: int, timeout: float = 20.0):
    return wait_for(lambda: (j := store.get(job_id)) is not None and j.is_final and j, timeout,
                    what=f"job {job_id} to finish")


def test_success_stores_result_and_progress(store, start_worker):
    start_worker()
    job, _ = store.submit("/videos/a.mp4", params={"behave": "ok", "frames": 7})
    done = finished(store, job.id)
    assert done.state == JobState.SUCCEEDED
    assert (done.frames_done, done.frames_total) == (7, 7)
    doc = store.result(job.id)
    assert doc["schema"] == "pose-service/result@1" and len(doc["frames"]) == 7
    states = [e["to_state"] for e in store.events(job.id)]
    assert states == ["queued", "running", "succeeded"]


def test_progress_is_visible_while_running(store, start_worker):
    start_worker()
    job, _ = store.submit("/videos/a.mp4", params={"behave": "ok", "frames": 40, "frame_s": 0.05})
    seen = wait_for(lambda: (j := store.get(job.id)).state == JobState.RUNNING and 0 < j.frames_done < 40 and j,
                    10, interval=0.01, what="partial progress")
    assert seen.frames_total == 40
    assert finished(store, job.id).frames_done == 40


def test_deadline_kills_the_child_and_fails_with_timeout(store, start_worker):
    start_worker()
    job, _ = store.submit("/videos/a.mp4", params={"behave": "sleep", "seconds": 60}, timeout_s=1.0,
                          max_attempts=1)
    done = finished(store, job.id)
    assert done.state == JobState.FAILED and done.error_kind == "timeout"
    assert "deadline of 1s" in done.error_message


def test_child_ignoring_sigterm_is_killed_after_grace(store, start_worker):
    start_worker(env={"POSE_KILL_GRACE_S": "0.5"})
    job, _ = store.submit("/videos/a.mp4", params={"behave": "ignore_sigterm", "seconds": 60}, timeout_s=0.5,
                          max_attempts=1)
    done = finished(store, job.id)
    assert done.error_kind == "timeout"
    # the next job still runs: the worker replaced the dead child
    nxt, _ = store.submit("/videos/b.mp4", params={"behave": "ok"})
    assert finished(store, nxt.id).state == JobState.SUCCEEDED


def test_segfault_fails_with_crash_and_stderr_tail(store, start_worker):
    start_worker()
    job, _ = store.submit("/videos/a.mp4", params={"behave": "segfault"}, max_attempts=1)
    done = finished(store, job.id)
    assert done.state == JobState.FAILED and done.error_kind == "crash"
    assert "SIGSEGV" in done.error_message
    assert "Fatal Python error" in done.error_message  # the tail of the child's stderr


def test_nonzero_exit_is_a_crash_with_its_status(store, start_worker):
    start_worker()
    job, _ = store.submit("/videos/a.mp4", params={"behave": "exit", "code": 7}, max_attempts=1)
    done = finished(store, job.id)
    assert done.error_kind == "crash" and "exited with status 7" in done.error_message


def test_bad_input_fails_once_without_retry(store, start_worker):
    start_worker()
    job, _ = store.submit("/videos/a.mp4", params={"behave": "bad_input"}, max_attempts=3)
    done = finished(store, job.id)
    assert done.state == JobState.FAILED and done.error_kind == "bad_input" and done.attempt == 1
    assert "is not a video" in done.error_message


def test_crashes_are_retried_with_backoff_until_attempts_run_out(store, start_worker):
    start_worker()
    job, _ = store.submit("/videos/a.mp4", params={"behave": "exit", "code": 1}, max_attempts=3)
    done = finished(store, job.id)
    assert done.state == JobState.FAILED and done.attempt == 3
    events = store.events(job.id)
    assert [e["to_state"] for e in events] == ["queued", "running", "queued", "running", "queued", "running",
                                               "failed"]
    requeues = [e for e in events if e["from_state"] == "running" and e["to_state"] == "queued"]
    assert all(e["error_kind"] == "crash" for e in requeues)
    runs = [e["at"] for e in events if e["to_state"] == "running"]
    # backoff base 0.1 s doubling with jitter 0.5..1.5: at least 0.05 s then 0.1 s between attempts
    assert (runs[1] - runs[0]).total_seconds() >= 0.05
    assert (runs[2] - runs[1]).total_seconds() >= 0.1


def test_priority_runs_first(store, start_worker):
    low = [store.submit("/v.mp4", params={"behave": "ok", "frames": 1})[0].id for _ in range(3)]
    high = store.submit("/v.mp4", priority=10, params={"behave": "ok", "frames": 1})[0].id
    start_worker()
    for job_id in [*low, high]:
        finished(store, job_id)
    first = min([*low, high], key=lambda i: store.get(i).started_at)
    assert first == high


def test_fresh_mode_uses_a_new_child_per_job(store, start_worker):
    start_worker("--mode", "fresh")
    ids = [store.submit("/v.mp4", params={"behave": "ok", "frames": 1})[0].id for _ in range(3)]
    for job_id in ids:
        assert finished(store, job_id).state == JobState.SUCCEEDED
    pids = {store.result(i)["pid"] for i in ids}
    assert len(pids) == 3


def test_warm_mode_reuses_the_child_and_recycles_it(store, start_worker):
    start_worker("--mode", "warm", "--recycle-after", "2")
    ids = [store.submit("/v.mp4", params={"behave": "ok", "frames": 1})[0].id for _ in range(4)]
    for job_id in ids:
        finished(store, job_id)
    pids = [store.result(i)["pid"] for i in ids]
    assert pids[0] == pids[1] and pids[2] == pids[3] and pids[1] != pids[2]


def test_gpu_flag_pins_the_child(store, start_worker):
    start_worker("--gpu", "3")
    job, _ = store.submit("/v.mp4", params={"behave": "env", "name": "CUDA_VISIBLE_DEVICES"})
    assert finished(store, job.id).state == JobState.SUCCEEDED
    assert store.result(job.id)["env"] == "3"


def test_uploaded_video_is_streamed_to_the_child(store, start_worker):
    payload = bytes(range(256)) * 9000  # > 2 chunks of 1 MiB
    upload_id = store.store_upload(iter([payload[:1000], payload[1000:]]), filename="clip.mp4",
                                   content_type="video/mp4", max_bytes=10 << 20)
    job, _ = store.submit(upload_id=upload_id, params={"behave": "checksum"})
    start_worker()
    assert finished(store, job.id).state == JobState.SUCCEEDED
    import hashlib

    doc = store.result(job.id)
    assert doc["sha256"] == hashlib.sha256(payload).hexdigest()
    assert "." not in doc["path"].rsplit("/", 1)[1]  # staged under a fixed name: no client suffix reaches FFmpeg


def test_gpus_all_starts_one_pinned_daemon_per_visible_gpu(store, start_worker):
    parent = start_worker("--gpus", "all", env={"CUDA_VISIBLE_DEVICES": "0,1"}, ready=False)
    workers = wait_for(lambda: len(w := store.live_workers(lease_s=60)) == 2 and w, 30, what="two GPU workers")
    assert sorted(w["gpu"] for w in workers) == ["0", "1"]
    jobs = [store.submit("/v.mp4", params={"behave": "env", "name": "CUDA_VISIBLE_DEVICES", "frames": 1,
                                           "frame_s": 0.2})[0] for _ in range(6)]
    seen = {store.result(j.id)["env"] for j in jobs if finished(store, j.id).state == JobState.SUCCEEDED}
    assert seen <= {"0", "1"} and seen
    parent.signal(15)
    assert parent.wait(30) == 0
    wait_for(lambda: store.live_workers(lease_s=60) == [], 10, what="both daemons to stop")
