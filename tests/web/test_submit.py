"""POST /v1/jobs with a JSON body: validation, media roots, idempotency."""

from __future__ import annotations

import json
from pathlib import Path

import pytest


def test_submit_path_returns_201_with_location_and_representation(client, media_root: Path) -> None:
    r = client.post(
        "/v1/jobs",
        json={
            "video_path": str(media_root / "video.mp4"),
            "priority": 5,
            "params": {"mode": "static"},
            "max_attempts": 2,
            "timeout_s": 60,
        },
    )
    assert r.status_code == 201, r.text
    job = r.json()
    assert r.headers["location"] == f"/v1/jobs/{job['id']}"
    assert job["state"] == "queued"
    assert job["priority"] == 5 and job["params"] == {"mode": "static"}
    assert job["video"] == {"source": "path", "path": str((media_root / "video.mp4").resolve())}
    assert job["attempts"] == {"attempt": 0, "max_attempts": 2, "retries": 0}
    assert job["timeout_s"] == 60
    assert job["progress"] == {"frames_done": 0, "frames_total": None, "percent": None}
    assert job["error"] is None and job["worker_id"] is None
    assert set(job["timings"]) >= {"created_at", "started_at", "finished_at", "wait_s", "run_s"}


def test_symlink_inside_the_root_is_stored_resolved(client, media_root: Path) -> None:
    r = client.post("/v1/jobs", json={"video_path": str(media_root / "inner_link.mp4")})
    assert r.status_code == 201
    assert r.json()["video"]["path"] == str((media_root / "sub" / "other.mp4").resolve())


@pytest.mark.parametrize(
    "path_of",
    [
        lambda root: "video.mp4",  # relative
        lambda root: "sub/../video.mp4",  # relative with ..
        lambda root: f"{root}/../outside/secret.mp4",  # .. out of the root
        lambda root: f"{root}/sub/../video.mp4",  # .. even when it stays inside
        lambda root: f"{root}/escape.mp4",  # symlink to a file outside
        lambda root: f"{root}/escape_dir/secret.mp4",  # through a symlinked directory
        lambda root: f"{root.parent}/outside/secret.mp4",  # plainly outside
        lambda root: "/etc/passwd",
        lambda root: f"{root}x/video.mp4",  # a sibling whose name starts like the root
    ],
)
def test_paths_outside_the_media_roots_are_403(client, media_root: Path, path_of) -> None:
    r = client.post("/v1/jobs", json={"video_path": path_of(media_root)})
    assert r.status_code == 403, r.text
    assert r.json()["error"]["code"] == "path_forbidden"


@pytest.mark.parametrize("name", ["missing.mp4", "sub"])
def test_path_that_is_not_an_existing_file_is_422(client, media_root: Path, name: str) -> None:
    r = client.post("/v1/jobs", json={"video_path": str(media_root / name)})
    assert r.status_code == 422
    assert r.json()["error"]["code"] == "video_not_found"


def test_no_media_roots_means_no_paths(make_client, media_root: Path) -> None:
    client = make_client(media_roots=())
    r = client.post("/v1/jobs", json={"video_path": str(media_root / "video.mp4")})
    assert r.status_code == 403


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        (b"{not json", 400, "malformed_json"),
        (b"\xff\xfe", 400, "malformed_json"),
        (b'{"video_path": NaN}', 400, "malformed_json"),
        (b"[1, 2]", 422, "invalid_body"),
        (b'"text"', 422, "invalid_body"),
        (b"{}", 422, "missing_field"),
        (b'{"video_path": 3}', 422, "invalid_field"),
        (b'{"video_path": ""}', 422, "invalid_field"),
        (b'{"video_path": "/a\\u0000b"}', 422, "invalid_field"),
        (b'{"video_path": "/a\\ud800"}', 422, "invalid_field"),
        (b'{"video_path": "/x", "colour": "red"}', 422, "unknown_field"),
        (b'{"video_path": "/x", "priority": "high"}', 422, "invalid_field"),
        (b'{"video_path": "/x", "priority": true}', 422, "invalid_field"),
        (b'{"video_path": "/x", "priority": 1.5}', 422, "invalid_field"),
        (b'{"video_path": "/x", "priority": 99999999999}', 422, "invalid_field"),
        (b'{"video_path": "/x", "params": [1]}', 422, "invalid_field"),
        (b'{"video_path": "/x", "params": {"a": "\\u0000"}}', 422, "invalid_field"),
        (b'{"video_path": "/x", "params": {"a": 1e999}}', 422, "invalid_field"),
        (b'{"video_path": "/x", "max_attempts": 0}', 422, "invalid_field"),
        (b'{"video_path": "/x", "timeout_s": 0}', 422, "invalid_field"),
        (b'{"video_path": "/x", "timeout_s": -1}', 422, "invalid_field"),
        (b'{"video_path": "/x", "idempotency_key": ""}', 422, "invalid_field"),
        (b'{"video_path": "/x", "idempotency_key": 5}', 422, "invalid_field"),
    ],
)
def test_malformed_bodies_are_4xx_with_error_object(client, body: bytes, status: int, code: str) -> None:
    r = client.post("/v1/jobs", content=body, headers={"content-type": "application/json"})
    assert r.status_code == status, r.text
    assert r.json()["error"]["code"] == code
    assert "Traceback" not in r.text


def test_deeply_nested_json_is_4xx(client) -> None:
    deep = "[" * 100_000 + "]" * 100_000
    r = client.post(
        "/v1/jobs",
        content=f'{{"video_path": "/x", "params": {{"a": {deep}}}}}',
        headers={"content-type": "application/json"},
    )
    assert r.status_code in (400, 422)
    nested = {"video_path": "/x", "params": json.loads("{" + '"a":{' * 40 + "}" * 41)}
    assert client.post("/v1/jobs", json=nested).status_code == 422


def test_oversized_json_body_is_413(client) -> None:
    body = json.dumps({"video_path": "/x", "params": {"blob": "x" * (2 << 20)}})
    r = client.post("/v1/jobs", content=body, headers={"content-type": "application/json"})
    assert r.status_code == 413
    assert r.json()["error"]["code"] == "body_too_large"

    def chunks():  # no Content-Length: the cap applies while reading
        yield b'{"video_path": "/x", "params": {"blob": "'
        for _ in range(3):
            yield b"x" * (1 << 20)
        yield b'"}}'

    r = client.post("/v1/jobs", content=chunks(), headers={"content-type": "application/json"})
    assert r.status_code == 413


def test_other_content_types_are_415(client) -> None:
    r = client.post("/v1/jobs", content=b"video_path=/x", headers={"content-type": "application/x-www-form-urlencoded"})
    assert r.status_code == 415
    assert r.json()["error"]["code"] == "unsupported_media_type"


def test_same_idempotency_key_returns_the_existing_job(client, media_root: Path) -> None:
    body = {"video_path": str(media_root / "video.mp4"), "idempotency_key": "abc-1", "params": {"max_people": 1}}
    first = client.post("/v1/jobs", json=body)
    again = client.post("/v1/jobs", json=body)
    assert first.status_code == 201 and again.status_code == 200
    assert again.json()["id"] == first.json()["id"]
    assert again.headers["location"] == first.headers["location"]


@pytest.mark.parametrize("change", [{"priority": 9}, {"params": {"max_people": 2}}, {"video_path": "sub/other.mp4"}])
def test_conflicting_reuse_of_an_idempotency_key_is_409(client, media_root: Path, change: dict) -> None:
    body = {"video_path": str(media_root / "video.mp4"), "idempotency_key": "abc-2", "params": {"max_people": 1}}
    assert client.post("/v1/jobs", json=body).status_code == 201
    if "video_path" in change:
        change = {"video_path": str(media_root / change["video_path"])}
    r = client.post("/v1/jobs", json={**body, **change})
    assert r.status_code == 409
    assert r.json()["error"]["code"] == "idempotency_conflict"
