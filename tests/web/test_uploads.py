"""POST /v1/jobs as multipart: the video streams into PostgreSQL, is probed, and is capped."""

from __future__ import annotations

import hashlib

from tests.web.conftest import VIDEO, sql


def upload_count(url: str) -> int:
    return sql(url, "SELECT count(*) FROM pose_uploads")[0][0]


def test_upload_is_stored_in_postgres_and_becomes_a_job(client, web_store, web_db_url) -> None:
    data = VIDEO.read_bytes()
    r = client.post(
        "/v1/jobs",
        files={"video": ("clip.mp4", data, "video/mp4")},
        data={"priority": "7", "params": '{"mode": "static"}', "max_attempts": "2", "timeout_s": "30"},
    )
    assert r.status_code == 201, r.text
    job = r.json()
    assert job["video"]["source"] == "upload"
    assert job["priority"] == 7 and job["params"] == {"mode": "static"}
    assert job["attempts"]["max_attempts"] == 2 and job["timeout_s"] == 30
    stored = b"".join(web_store.iter_upload(job["video"]["upload_id"]))
    assert stored == data
    filename, size, digest, complete = sql(
        web_db_url,
        "SELECT filename, size_bytes, sha256, complete FROM pose_uploads WHERE id = %s",
        (job["video"]["upload_id"],),
    )[0]
    assert (filename, size, digest, complete) == ("clip.mp4", len(data), hashlib.sha256(data).hexdigest(), True)


def test_a_body_that_is_not_a_video_is_415_and_nothing_is_kept(client, web_db_url) -> None:
    r = client.post("/v1/jobs", files={"video": ("notes.mp4", b"this is not a video\n" * 5000, "video/mp4")})
    assert r.status_code == 415
    assert r.json()["error"]["code"] == "not_a_video"
    assert upload_count(web_db_url) == 0
    r = client.post("/v1/jobs", files={"video": ("empty.mp4", b"", "video/mp4")})
    assert r.status_code == 415
    assert upload_count(web_db_url) == 0


def test_a_still_image_is_not_a_video(client, web_db_url) -> None:
    import cv2
    import numpy as np

    for ext in (".png", ".jpg", ".bmp", ".webp"):
        ok, encoded = cv2.imencode(ext, np.zeros((8, 8, 3), dtype=np.uint8))
        assert ok
        r = client.post("/v1/jobs", files={"video": (f"photo{ext}", encoded.tobytes(), "video/mp4")})
        assert r.status_code == 415, ext
    assert upload_count(web_db_url) == 0


def test_upload_past_the_cap_is_413_and_nothing_is_kept(make_client, web_db_url) -> None:
    client = make_client(max_upload_mb=0.1)
    data = VIDEO.read_bytes()  # ~155 KiB > 0.1 MiB
    r = client.post("/v1/jobs", files={"video": ("big.mp4", data, "video/mp4")})
    assert r.status_code == 413
    assert r.json()["error"]["code"] == "upload_too_large"
    assert upload_count(web_db_url) == 0
    # a declared Content-Length far past the cap is refused before reading
    big = (
        b"--b\r\nContent-Disposition: form-data; name=video; filename=x.mp4\r\n\r\n"
        + b"0" * (3 << 20)
        + b"\r\n--b--\r\n"
    )
    r = client.post("/v1/jobs", content=big, headers={"content-type": "multipart/form-data; boundary=b"})
    assert r.status_code == 413
    assert upload_count(web_db_url) == 0


def test_multipart_without_video_part_is_422(client) -> None:
    r = client.post("/v1/jobs", files={"other": ("x.mp4", b"123", "video/mp4")}, data={"priority": "1"})
    assert r.status_code == 422
    r = client.post("/v1/jobs", data={"priority": "1"}, files={"video2": ("x", b"1")})
    assert r.status_code == 422


def test_invalid_form_fields_are_422_and_the_upload_is_deleted(client, web_db_url) -> None:
    for fields in (
        {"priority": "high"},
        {"params": "[1]"},
        {"params": "{bad"},
        {"colour": "red"},
        {"max_attempts": "0"},
        {"timeout_s": "nan"},
    ):
        r = client.post("/v1/jobs", files={"video": ("clip.mp4", VIDEO.read_bytes(), "video/mp4")}, data=fields)
        assert r.status_code in (400, 422), (fields, r.text)
        assert "error" in r.json()
    assert upload_count(web_db_url) == 0


def test_malformed_multipart_is_400(client, web_db_url) -> None:
    r = client.post("/v1/jobs", content=b"garbage", headers={"content-type": "multipart/form-data"})
    assert r.status_code == 400  # no boundary
    body = b"--b\r\nContent-Disposition: form-data; name=video; filename=x.mp4\r\n\r\n" + VIDEO.read_bytes()[:5000]
    r = client.post("/v1/jobs", content=body, headers={"content-type": "multipart/form-data; boundary=b"})
    assert r.status_code == 400  # ends inside the video part
    r = client.post(
        "/v1/jobs", content=b"--b\r\nbroken\r\n\r\n", headers={"content-type": "multipart/form-data; boundary=b"}
    )
    assert r.status_code == 400
    assert upload_count(web_db_url) == 0


def test_idempotent_upload_replay_returns_the_job_and_keeps_one_upload(client, web_db_url) -> None:
    def post(priority: str):
        return client.post(
            "/v1/jobs",
            files={"video": ("clip.mp4", VIDEO.read_bytes(), "video/mp4")},
            data={"idempotency_key": "up-1", "priority": priority},
        )

    first, again = post("1"), post("1")
    assert (first.status_code, again.status_code) == (201, 200)
    assert first.json()["id"] == again.json()["id"]
    assert upload_count(web_db_url) == 1
    conflict = post("2")
    assert conflict.status_code == 409
    assert upload_count(web_db_url) == 1
