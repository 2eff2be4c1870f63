"""Input the service must refuse at the door, with a 4xx that says why, never a 500 or a job that fails
later: files that make FFmpeg read other files, pixel bombs, malformed numbers and multipart, and
params the configured pipeline would refuse."""

from __future__ import annotations

import base64
import json
import os
import struct
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest

from tests.web.conftest import VIDEO, sql
from worker.input_staging import staged_video
from worker.pipeline.contract import BadInput
from worker.pipeline.io.media_checks import MAX_PIXELS
from worker.pipeline.io.video_source import VideoSource


def counts(url: str) -> tuple[int, int]:
    return sql(url, "SELECT (SELECT count(*) FROM pose_uploads), (SELECT count(*) FROM pose_jobs)")[0]


def playlist(target: Path) -> bytes:
    return (
        "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:10\n#EXT-X-MEDIA-SEQUENCE:0\n"
        f"#EXTINF:10.0,\n{target}\n#EXT-X-ENDLIST\n"
    ).encode()


# ---- item 9: nothing that reads other files -----------------------------------------------------------
def small_avi(path: Path) -> Path:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 5.0, (64, 48))
    assert writer.isOpened()
    for i in range(5):
        writer.write(np.full((48, 64, 3), i * 20, np.uint8))
    writer.release()
    return path


def test_an_uploaded_playlist_is_refused_the_same_whether_its_target_exists(client, web_db_url, tmp_path) -> None:
    """FFmpeg's HLS demuxer reads the segments a playlist names (an AVI here decodes through it), so
    an accepted playlist would be a job on a file outside the roots, and a refusal only when the
    target is missing would tell the client which files exist."""
    outside = small_avi(tmp_path / "outside.avi")
    answers = []
    for name, body in (
        ("x.m3u8", playlist(outside)),
        ("x.m3u8", playlist(tmp_path / "missing.mp4")),
        ("x.ffconcat", f"ffconcat version 1.0\nfile '{outside}'\n".encode()),
        ("x.ffconcat", f"ffconcat version 1.0\nfile '{tmp_path / 'missing.mp4'}'\n".encode()),
    ):
        r = client.post("/v1/jobs", files={"video": (name, body, "application/vnd.apple.mpegurl")})
        answers.append((r.status_code, r.json()["error"]))
    assert answers[0][0] == 415 and answers[0][1]["code"] == "not_a_video"
    assert "playlists" in answers[0][1]["message"]
    assert all(a == answers[0] for a in answers), answers  # no existence oracle
    assert counts(web_db_url) == (0, 0)


def test_a_video_path_playlist_inside_a_root_is_refused(make_client, web_db_url, tmp_path) -> None:
    root, outside = tmp_path / "root", tmp_path / "outside.mp4"
    root.mkdir()
    outside.write_bytes(VIDEO.read_bytes())
    (root / "list.m3u8").write_bytes(playlist(outside))
    (root / "clip.mp4").write_bytes(playlist(outside))  # the name does not matter, the content does
    client = make_client(media_roots=(str(root),))
    for name in ("list.m3u8", "clip.mp4"):
        r = client.post("/v1/jobs", json={"video_path": str(root / name)})
        assert r.status_code == 415, r.text
        assert r.json()["error"]["code"] == "not_a_video"
    assert counts(web_db_url) == (0, 0)


def test_the_pipeline_child_refuses_a_playlist_whoever_submitted_it(tmp_path) -> None:
    path = tmp_path / "x.m3u8"
    path.write_bytes(playlist(VIDEO))
    with pytest.raises(BadInput, match="playlists"):
        VideoSource(path)


def test_uploads_are_staged_without_the_client_suffix(web_store, tmp_path) -> None:
    upload_id = web_store.store_upload(
        iter([VIDEO.read_bytes()]), filename="x.m3u8", content_type="video/mp4", max_bytes=1 << 30
    )
    job, _ = web_store.submit(upload_id=upload_id)
    with staged_video(web_store, job, tmp_path) as path:
        assert os.path.splitext(path)[1] == ""
        assert Path(path).read_bytes() == VIDEO.read_bytes()


# ---- item 12: pixel limits from the header, before decoding ----------------------------------------
def png_bomb(width: int, height: int) -> bytes:
    """A real, valid PNG of ``width``×``height`` black pixels: tiny compressed, huge decoded."""
    squash = zlib.compressobj(9)
    row = b"\x00" * (1 + 3 * width)
    data = b"".join(squash.compress(row) for _ in range(height)) + squash.flush()

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", data) + chunk(b"IEND", b"")


def test_a_png_bomb_is_refused_from_its_header(client, web_db_url) -> None:
    bomb = png_bomb(12000, 12000)
    assert len(bomb) < 1 << 20
    r = client.post("/pose/hybrid", json={"image_base64": base64.b64encode(bomb).decode()})
    assert r.status_code == 422, r.text
    assert r.json()["error"]["code"] == "too_many_pixels"
    assert counts(web_db_url) == (0, 0)


@pytest.mark.parametrize("size", [(1, 64), (64, 1)])
def test_a_one_pixel_wide_image_is_422(client, web_db_url, size) -> None:
    ok, encoded = cv2.imencode(".png", np.zeros((size[1], size[0], 3), np.uint8))
    assert ok
    r = client.post("/pose/hybrid", json={"image_base64": base64.b64encode(encoded.tobytes()).decode()})
    assert r.status_code == 422, r.text
    assert r.json()["error"]["code"] == "too_few_pixels"
    assert counts(web_db_url) == (0, 0)


def test_images_other_than_png_jpeg_webp_are_refused(client) -> None:
    ok, encoded = cv2.imencode(".bmp", np.zeros((32, 32, 3), np.uint8))
    assert ok
    r = client.post("/pose/hybrid", json={"image_base64": base64.b64encode(encoded.tobytes()).decode()})
    assert r.status_code == 422 and r.json()["error"]["code"] == "not_an_image"


@pytest.fixture(scope="module")
def huge_video(tmp_path_factory) -> Path:
    """One flat MJPEG frame of more than MAX_PIXELS pixels in an AVI: a few KB on disk."""
    width, height = 8200, 5000
    assert width * height > MAX_PIXELS
    path = tmp_path_factory.mktemp("huge") / "huge.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 1.0, (width, height))
    assert writer.isOpened()
    writer.write(np.zeros((height, width, 3), np.uint8))
    writer.release()
    return path


def test_a_video_over_the_pixel_limit_is_refused_by_the_web_and_the_child(client, web_db_url, huge_video) -> None:
    r = client.post("/v1/jobs", files={"video": ("huge.avi", huge_video.read_bytes(), "video/x-msvideo")})
    assert r.status_code == 422, r.text
    assert r.json()["error"]["code"] == "too_many_pixels"
    assert counts(web_db_url) == (0, 0)
    with pytest.raises(BadInput, match="more than this service decodes"):
        VideoSource(huge_video)


# ---- item 13: 4xx, not 500 ------------------------------------------------------------------------
@pytest.mark.parametrize("text", ["+-5", "--1", "²", "١٢", "1_0", " ", "0x10"])
def test_malformed_integers_in_queries_and_forms_are_422(client, web_db_url, text: str) -> None:
    assert client.get("/v1/jobs", params={"limit": text}).status_code == 422
    assert client.get("/v1/stats", params={"days": text}).status_code == 422
    for name in ("priority", "max_attempts"):
        r = client.post("/v1/jobs", files={"video": ("c.mp4", VIDEO.read_bytes(), "video/mp4")}, data={name: text})
        assert r.status_code == 422, (name, r.text)
    assert counts(web_db_url) == (0, 0)


def test_an_overflowing_timeout_is_422(client, media_root, web_db_url) -> None:
    huge = "1" + "0" * 400
    body = f'{{"video_path": "{media_root / "video.mp4"}", "timeout_s": {huge}}}'
    r = client.post("/v1/jobs", content=body, headers={"content-type": "application/json"})
    assert r.status_code == 422, r.text
    r = client.post("/v1/jobs", files={"video": ("c.mp4", VIDEO.read_bytes(), "video/mp4")}, data={"timeout_s": huge})
    assert r.status_code == 422, r.text
    assert counts(web_db_url) == (0, 0)


def multipart(filename: bytes, content_type: bytes, data: bytes, boundary: bytes = b"b") -> bytes:
    return (
        b"--" + boundary + b'\r\nContent-Disposition: form-data; name="video"; filename="' + filename + b'"\r\n'
        b"Content-Type: " + content_type + b"\r\n\r\n" + data + b"\r\n--" + boundary + b"--\r\n"
    )


def test_nul_in_a_part_filename_or_content_type_is_422(client, web_db_url) -> None:
    for filename, content_type in ((b"a\x00b.mp4", b"video/mp4"), (b"a.mp4", b"video/mp4\x00x")):
        r = client.post(
            "/v1/jobs",
            content=multipart(filename, content_type, VIDEO.read_bytes()),
            headers={"content-type": "multipart/form-data; boundary=b"},
        )
        assert r.status_code == 422, r.text
        assert r.json()["error"]["code"] == "invalid_field"
    assert counts(web_db_url) == (0, 0)


def test_an_overlong_boundary_is_400(client, web_db_url) -> None:
    boundary = b"x" * 300
    r = client.post(
        "/v1/jobs",
        content=multipart(b"a.mp4", b"video/mp4", VIDEO.read_bytes(), boundary),
        headers={"content-type": "multipart/form-data; boundary=" + boundary.decode()},
    )
    assert r.status_code == 400, r.text
    assert counts(web_db_url) == (0, 0)


def test_a_full_spool_disk_is_507(start_server, web_db_url) -> None:
    """The server runs with a 256 KiB file size limit (SIGXFSZ ignored, so a write past it fails with
    EFBIG, as one on a full disk fails with ENOSPC): the upload cannot be spooled."""
    import httpx

    limited = ["bash", "-c", 'trap "" XFSZ; ulimit -f 256; exec "$@"', "limited"]
    server = start_server(prefix=limited)
    r = httpx.post(server.url + "/v1/jobs", files={"video": ("big.mp4", b"\x00" * (3 << 20), "video/mp4")}, timeout=30)
    assert r.status_code == 507, r.text
    assert r.json()["error"]["code"] == "insufficient_storage"
    assert counts(web_db_url) == (0, 0)


# ---- item 14: the configured pipeline's params, checked at submit ----------------------------------
@pytest.mark.parametrize(
    "params",
    [{"max_people": 0}, {"max_people": True}, {"device": "tpu"}, {"mode": "fast"}, {"smoothing": "yes"},
     {"colour": "red"}, {"overlay": "/tmp/x.mp4"}],
)
def test_params_the_pose_pipeline_refuses_are_422_at_submit(client, media_root, web_db_url, params) -> None:
    r = client.post("/v1/jobs", json={"video_path": str(media_root / "video.mp4"), "params": params})
    assert r.status_code == 422, r.text
    assert r.json()["error"]["code"] == "invalid_params"
    r = client.post(
        "/v1/jobs",
        files={"video": ("c.mp4", VIDEO.read_bytes(), "video/mp4")},
        data={"params": json.dumps(params)},
    )
    assert r.status_code == 422 and r.json()["error"]["code"] == "invalid_params"
    assert counts(web_db_url) == (0, 0)


def test_valid_pose_params_and_other_pipelines_params_are_accepted(make_client, media_root) -> None:
    path = str(media_root / "video.mp4")
    client = make_client()
    params = {"max_people": 2, "device": "cpu", "smoothing": False, "mode": "static"}
    assert client.post("/v1/jobs", json={"video_path": path, "params": params}).status_code == 201
    other = make_client(pipeline="tests.web.pipelines:create")  # declares no schema: any object
    assert other.post("/v1/jobs", json={"video_path": path, "params": {"behave": "ok"}}).status_code == 201


# ---- found by schemathesis (tests/web/test_schemathesis.py) ------------------------------------------
def test_405_names_every_method_of_the_path(client) -> None:
    r = client.request("OPTIONS", "/v1/jobs")
    assert r.status_code == 405
    assert r.headers["allow"] == "GET, HEAD, POST"


def test_an_integral_float_is_an_integer(client, media_root) -> None:
    r = client.post("/v1/jobs", json={"video_path": str(media_root / "video.mp4"), "priority": -377.0})
    assert r.status_code == 201, r.text
    assert r.json()["priority"] == -377
    r = client.post("/v1/jobs", json={"video_path": str(media_root / "video.mp4"), "priority": 1.5})
    assert r.status_code == 422
