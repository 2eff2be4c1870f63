"""Tokens separate tenants (DESIGN.md section 10): owners, per-owner idempotency keys, filtered
listings and statistics, priority ceilings, retry caps, and upload retention."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest

from jobs import api_tokens
from jobs.states import ErrorKind
from jobs.store import MAX_RETRIES, JobStore
from tests.conftest import wait_for
from tests.web.conftest import run_job, sql
from tests.web.test_legacy import _finish_with_image_check, png_base64
from web.routes_legacy import HYBRID_PRIORITY


def bearer(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


@pytest.fixture
def tenants(make_client, web_store: JobStore) -> dict[str, Any]:
    """Two tenants (A and B, default scopes), an admin token, and a client started closed."""
    rec_a, a = api_tokens.create_token(web_store, "tenant-a")
    rec_b, b = api_tokens.create_token(web_store, "tenant-b")
    _, admin = api_tokens.create_token(web_store, "ops", scopes=("admin",))
    return {"client": make_client(), "a": a, "b": b, "admin": admin, "a_id": rec_a.id, "b_id": rec_b.id}


def submit(client, media_root: Path, token: str, **fields: Any) -> Any:
    return client.post("/v1/jobs", json={"video_path": str(media_root / "video.mp4"), **fields},
                       headers=bearer(token))


def test_jobs_record_their_owner(tenants, media_root, web_db_url, make_client, web_store) -> None:
    client = tenants["client"]
    job = submit(client, media_root, tenants["a"]).json()
    assert job["owner_token_id"] == tenants["a_id"]
    legacy = client.post("/pose/video", json={"video_path": str(media_root / "video.mp4")},
                         headers=bearer(tenants["b"])).json()
    sql(web_db_url, "INSERT INTO pose_jobs (video_path) VALUES ('/abs/v.mp4')")
    rows = sql(web_db_url, "SELECT id, owner_token_id FROM pose_jobs ORDER BY id")
    assert rows == [(job["id"], tenants["a_id"]), (legacy["job_id"], tenants["b_id"]), (3, None)]
    env_client = make_client(api_tokens=("env-secret",))
    env_job = submit(env_client, media_root, "env-secret").json()
    assert env_job["owner_token_id"] is None  # env tokens are the operator's: no owner


def test_a_tenant_sees_and_controls_only_its_own_jobs(tenants, media_root, web_store) -> None:
    client, a, b = tenants["client"], tenants["a"], tenants["b"]
    mine = submit(client, media_root, a).json()["id"]
    theirs = submit(client, media_root, b).json()["id"]
    run_job(web_store)  # finishes A's job (the older one), so it has a result
    for method, path, other in (
        ("GET", f"/v1/jobs/{mine}", b),
        ("GET", f"/v1/jobs/{mine}/result", b),
        ("GET", f"/v1/jobs/{mine}/events", b),
        ("POST", f"/v1/jobs/{mine}/cancel", b),
        ("POST", f"/v1/jobs/{mine}/retry", b),
        ("GET", f"/pose/video/status/{mine}", b),
        ("POST", f"/v1/jobs/{theirs}/cancel", a),
        ("GET", f"/v1/jobs/{theirs}", a),
    ):
        r = client.request(method, path, headers=bearer(other))
        # 404 exactly as for a missing job, never 403: ids are no oracle
        assert r.status_code == 404 and r.json()["error"]["code"] == "job_not_found", (method, path)
    assert client.get(f"/v1/jobs/{mine}/result", headers=bearer(a)).status_code == 200
    assert web_store.get(theirs).state == "queued"  # B's job was neither cancelled nor touched
    listed = client.get("/v1/jobs", headers=bearer(a)).json()["jobs"]
    assert [j["id"] for j in listed] == [mine]
    assert [j["id"] for j in client.get("/v1/jobs", headers=bearer(b)).json()["jobs"]] == [theirs]
    assert client.post(f"/v1/jobs/{theirs}/cancel", headers=bearer(b)).status_code == 200


def test_an_admin_token_sees_and_controls_every_job(tenants, media_root) -> None:
    client = tenants["client"]
    a_job = submit(client, media_root, tenants["a"]).json()["id"]
    b_job = submit(client, media_root, tenants["b"]).json()["id"]
    admin = bearer(tenants["admin"])
    assert [j["id"] for j in client.get("/v1/jobs", headers=admin).json()["jobs"]] == [b_job, a_job]
    assert client.get(f"/v1/jobs/{a_job}", headers=admin).status_code == 200
    assert client.post(f"/v1/jobs/{b_job}/cancel", headers=admin).status_code == 200
    assert client.post(f"/v1/jobs/{b_job}/retry", headers=admin).status_code == 200


def test_idempotency_keys_are_scoped_per_owner(tenants, media_root) -> None:
    client, a, b = tenants["client"], tenants["a"], tenants["b"]
    first = submit(client, media_root, a, idempotency_key="batch-1", priority=3)
    assert first.status_code == 201
    # B uses the same key for a different request: its own new job, no 409 that would reveal A's key
    other = submit(client, media_root, b, idempotency_key="batch-1", priority=9)
    assert other.status_code == 201 and other.json()["id"] != first.json()["id"]
    again = submit(client, media_root, a, idempotency_key="batch-1", priority=3)
    assert again.status_code == 200 and again.json()["id"] == first.json()["id"]
    conflict = submit(client, media_root, a, idempotency_key="batch-1", priority=4)
    assert conflict.status_code == 409
    assert submit(client, media_root, b, idempotency_key="batch-1", priority=9).json()["id"] == other.json()["id"]


def test_idempotency_keys_of_ownerless_jobs_stay_unique(web_store: JobStore, web_db_url) -> None:
    """The SQL contract's promise: an insert repeating an ownerless job's key fails."""
    web_store.submit("/v.mp4", idempotency_key="k")
    with pytest.raises(Exception, match="pose_jobs_owner_idempotency_key_idx"):
        sql(web_db_url, "INSERT INTO pose_jobs (video_path, idempotency_key) VALUES ('/w.mp4', 'k')")


def test_statistics_of_a_tenant_are_its_own(tenants, media_root, web_store) -> None:
    client = tenants["client"]
    for _ in range(2):
        submit(client, media_root, tenants["a"])
    submit(client, media_root, tenants["b"])
    web_store.submit("/abs/sql.mp4")  # an ownerless job

    def submitted(token: str) -> int:
        return client.get("/v1/stats", headers=bearer(token)).json()["totals"]["submitted"]

    assert (submitted(tenants["a"]), submitted(tenants["b"]), submitted(tenants["admin"])) == (2, 1, 4)


def test_owned_statistics_match_the_views(tenants, media_root, web_store: JobStore) -> None:
    """The per-owner statistics and the views are one SQL function each: over one owner's jobs
    (here every job) they must give the same rows."""
    client = tenants["client"]
    for _ in range(3):
        submit(client, media_root, tenants["a"], max_attempts=2)
    run_job(web_store)
    claimed = web_store.claim("w-x", 30.0)
    web_store.fail(claimed, "w-x", ErrorKind.CRASH, "boom", retry_base_s=0.001, retry_cap_s=0.001)
    claimed = web_store.claim("w-x", 30.0)
    web_store.fail(claimed, "w-x", ErrorKind.BAD_INPUT, "not a video", retry_base_s=1, retry_cap_s=1)
    owner = tenants["a_id"]
    assert web_store.daily_stats(7, owner_token_id=owner) == web_store.daily_stats(7)
    assert web_store.failure_stats(7, owner_token_id=owner) == web_store.failure_stats(7)
    assert web_store.failure_stats(7)  # the comparison is not vacuous
    assert web_store.daily_stats(7, owner_token_id=tenants["b_id"]) == []


def test_priority_ceilings(make_client, web_store, media_root) -> None:
    _, capped = api_tokens.create_token(web_store, "capped", max_priority=10)
    _, plain = api_tokens.create_token(web_store, "plain")
    client = make_client(api_tokens=("env-admin",))
    assert submit(client, media_root, capped, priority=10).status_code == 201
    r = submit(client, media_root, capped, priority=11)
    assert r.status_code == 422 and r.json()["error"]["code"] == "priority_too_high"
    assert submit(client, media_root, plain, priority=api_tokens.DEFAULT_MAX_PRIORITY).status_code == 201
    assert submit(client, media_root, plain, priority=1_000_000).status_code == 422
    r = client.post("/v1/jobs", files={"video": ("v.mp4", (media_root / "video.mp4").read_bytes(), "video/mp4")},
                    data={"priority": "11"}, headers=bearer(capped))
    assert r.status_code == 422 and r.json()["error"]["code"] == "priority_too_high"
    assert submit(client, media_root, "env-admin", priority=api_tokens.MAX_CEILING).status_code == 201
    assert submit(client, media_root, "env-admin", priority=HYBRID_PRIORITY).status_code == 422
    assert HYBRID_PRIORITY > api_tokens.MAX_CEILING  # interactive jobs run before any submission
    with pytest.raises(ValueError):
        api_tokens.create_token(web_store, "too-high", max_priority=HYBRID_PRIORITY)


def test_a_hand_written_ceiling_stays_below_interactive_jobs(make_client, web_store, web_db_url, media_root) -> None:
    record, token = api_tokens.create_token(web_store, "sneaky")
    sql(web_db_url, "UPDATE pose_api_tokens SET max_priority = 5000 WHERE id = %s", (record.id,))
    client = make_client()
    assert submit(client, media_root, token, priority=HYBRID_PRIORITY).status_code == 422
    assert submit(client, media_root, token, priority=api_tokens.MAX_CEILING).status_code == 201


def test_hybrid_runs_before_submissions_at_the_ceiling_and_is_owned(tenants, media_root, web_db_url) -> None:
    client, a = tenants["client"], tenants["a"]
    store = client.app.state.ctx.store
    queued = submit(client, media_root, a, priority=api_tokens.DEFAULT_MAX_PRIORITY).json()["id"]
    claimed = []

    def worker() -> None:  # starts claiming once the hybrid job waits behind the older one
        wait_for(lambda: sql(web_db_url, "SELECT 1 FROM pose_jobs WHERE upload_id IS NOT NULL"), what="hybrid job")
        job = store.claim("w-h", 30.0)
        claimed.append(job.id)
        _finish_with_image_check(store, job, "w-h")

    thread = threading.Thread(target=worker, daemon=True)
    thread.start()
    r = client.post("/pose/hybrid", json={"image_base64": png_base64(64, 48)}, headers=bearer(a))
    thread.join(timeout=10)
    assert r.status_code == 200, r.text
    assert claimed == [r.json()["job_id"]] and queued != claimed[0]  # claimed before the older job
    assert sql(web_db_url, "SELECT priority, owner_token_id FROM pose_jobs WHERE id = %s", (claimed[0],)) == [
        (HYBRID_PRIORITY, tenants["a_id"])]
    assert store.get(queued).state == "queued"


def _fail_now(web_db_url: str, job_id: int) -> None:
    sql(web_db_url, "UPDATE pose_jobs SET state = 'failed', finished_at = now(), error_kind = 'crash' WHERE id = %s",
        (job_id,))


def test_retries_are_capped_and_counted(tenants, media_root, web_db_url) -> None:
    client, a = tenants["client"], tenants["a"]
    job_id = submit(client, media_root, a).json()["id"]
    for n in range(1, MAX_RETRIES + 1):
        _fail_now(web_db_url, job_id)
        r = client.post(f"/v1/jobs/{job_id}/retry", headers=bearer(a))
        assert r.status_code == 200 and r.json()["attempts"]["retries"] == n
    _fail_now(web_db_url, job_id)
    for token in (a, tenants["admin"]):  # the cap holds for admins too
        r = client.post(f"/v1/jobs/{job_id}/retry", headers=bearer(token))
        assert r.status_code == 409 and r.json()["error"]["code"] == "retry_limit"
    assert sql(web_db_url, "SELECT state, retries FROM pose_jobs WHERE id = %s", (job_id,)) == [("failed", MAX_RETRIES)]


# ---- upload retention ----------------------------------------------------------------------------
def _upload(store: JobStore, data: bytes = b"x" * 10) -> int:
    return store.store_upload(iter([data]), filename="v.mp4", content_type="video/mp4", max_bytes=1 << 20)


def _age(web_db_url: str, upload_id: int, days: float, job_id: int | None = None, state: str = "succeeded") -> None:
    sql(web_db_url, "UPDATE pose_uploads SET created_at = now() - make_interval(days => %s) WHERE id = %s",
        (int(days) + 1, upload_id))
    if job_id is not None:
        sql(web_db_url, "UPDATE pose_jobs SET state = %s, finished_at = now() - make_interval(days => %s) "
                        "WHERE id = %s", (state, int(days), job_id))


def _chunks(web_db_url: str, upload_id: int) -> int:
    return sql(web_db_url, "SELECT count(*) FROM pose_upload_chunks WHERE upload_id = %s", (upload_id,))[0][0]


def test_retention_deletes_uploads_of_jobs_that_ended_long_ago(web_store: JobStore, web_db_url) -> None:
    old_done, recent_done, old_queued, orphan, young_orphan, shared = (_upload(web_store) for _ in range(6))
    job_old = web_store.submit(upload_id=old_done)[0].id
    _age(web_db_url, old_done, 10, job_old)
    job_recent = web_store.submit(upload_id=recent_done)[0].id
    _age(web_db_url, recent_done, 10)
    _age(web_db_url, recent_done, 1, job_recent)  # ended a day ago: kept
    job_queued = web_store.submit(upload_id=old_queued)[0].id
    _age(web_db_url, old_queued, 10)  # old upload, but its job has not ended
    _age(web_db_url, orphan, 10)  # no job refers to it: removed entirely
    # one upload, two jobs (an idempotent replay keeps the first upload): kept while either is recent
    first, second = (web_store.submit(upload_id=shared)[0].id for _ in range(2))
    _age(web_db_url, shared, 10, first)
    _age(web_db_url, shared, 10, second, state="failed")
    _age(web_db_url, shared, 1, second, state="failed")

    assert web_store.delete_expired_uploads(7, batch=1) == 2  # batches until none is left
    assert _chunks(web_db_url, old_done) == 0
    assert web_store.upload_info(old_done)["deleted_at"] is not None  # the row the job refers to stays
    assert web_store.get(job_old).upload_id == old_done
    assert web_store.upload_info(orphan) is None
    for kept in (recent_done, old_queued, young_orphan, shared):
        assert _chunks(web_db_url, kept) == 1 and web_store.upload_info(kept)["deleted_at"] is None
    assert web_store.get(job_queued).state == "queued"
    assert web_store.delete_expired_uploads(7) == 0  # idempotent


def test_a_job_whose_upload_expired_cannot_be_retried(make_client, web_store: JobStore, web_db_url) -> None:
    client = make_client()
    upload_id = _upload(web_store)
    job_id = web_store.submit(upload_id=upload_id)[0].id
    _age(web_db_url, upload_id, 10, job_id, state="failed")
    assert web_store.delete_expired_uploads(7) == 1
    r = client.post(f"/v1/jobs/{job_id}/retry")
    assert r.status_code == 409 and r.json()["error"]["code"] == "upload_expired"


def test_the_web_process_runs_retention_when_it_is_set(make_client, web_store: JobStore, web_db_url) -> None:
    upload_id = _upload(web_store)
    job_id = web_store.submit(upload_id=upload_id)[0].id
    _age(web_db_url, upload_id, 10, job_id)
    make_client()  # POSE_RETENTION_DAYS unset: kept for ever
    assert _chunks(web_db_url, upload_id) == 1
    make_client(retention_days=7.0)
    wait_for(lambda: _chunks(web_db_url, upload_id) == 0, timeout=10, what="retention at startup")


def test_retention_days_setting(monkeypatch) -> None:
    from jobs.settings import Settings

    monkeypatch.delenv("POSE_RETENTION_DAYS", raising=False)
    assert Settings.from_env().retention_days is None
    monkeypatch.setenv("POSE_RETENTION_DAYS", "30")
    assert Settings.from_env().retention_days == 30.0
    monkeypatch.setenv("POSE_RETENTION_DAYS", "0")
    with pytest.raises(ValueError, match="POSE_RETENTION_DAYS"):
        Settings.from_env()

