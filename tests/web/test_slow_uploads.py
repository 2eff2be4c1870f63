"""Slow and oversized request bodies against a real `pose-service web` over real sockets: a stalled or
trickling client gets 408 and holds no database connection while it sends; every byte of a body counts
against the upload cap."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import cv2
import httpx
import numpy as np

from tests.web.conftest import VIDEO, sql

PART_HEAD = b'--b\r\nContent-Disposition: form-data; name="video"; filename="x.mp4"\r\nContent-Type: video/mp4\r\n\r\n'


def open_upload(port: int, first: bytes = b"") -> socket.socket:
    """A multipart upload whose headers and video part have begun: the server is inside the body."""
    sock = socket.create_connection(("127.0.0.1", port))
    head = (
        "POST /v1/jobs HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: multipart/form-data; boundary=b\r\n"
        f"Content-Length: {len(PART_HEAD) + len(VIDEO.read_bytes()) + 8}\r\n\r\n"
    ).encode()
    sock.sendall(head + PART_HEAD + first)
    return sock


def status_of(sock: socket.socket, timeout: float) -> tuple[int, float]:
    """The response's status code and how long it took to come."""
    sock.settimeout(timeout)
    started = time.monotonic()
    data = b""
    while b"\r\n" not in data:
        piece = sock.recv(4096)
        if not piece:
            break
        data += piece
    return int(data.split(b" ", 2)[1]), time.monotonic() - started


def test_a_stalled_or_trickling_body_is_408(start_server) -> None:
    server = start_server(env={"POSE_BODY_IDLE_TIMEOUT_S": "1", "POSE_BODY_TIMEOUT_S": "3"})
    stalled = open_upload(server.port, VIDEO.read_bytes()[:1000])
    status, waited = status_of(stalled, timeout=15)
    assert status == 408 and waited < 5
    stalled.close()

    trickling = open_upload(server.port)
    stop = threading.Event()

    def trickle() -> None:
        for byte in VIDEO.read_bytes()[:100]:
            if stop.wait(0.3):
                return
            try:
                trickling.sendall(bytes([byte]))
            except OSError:
                return

    feeder = threading.Thread(target=trickle, daemon=True)
    feeder.start()
    status, waited = status_of(trickling, timeout=15)  # never idle for 1 s, but past 3 s in all
    stop.set()
    feeder.join()
    trickling.close()
    assert status == 408 and waited < 8


def test_slow_uploads_do_not_hold_database_connections(start_server) -> None:
    """18 clients trickling a byte every 0.5 s (more than the web's 16 database connections): reads
    still answer at once, because nothing touches the database until a body is complete."""
    server = start_server(env={"POSE_BODY_IDLE_TIMEOUT_S": "10"})
    sockets = [open_upload(server.port, VIDEO.read_bytes()[:100]) for _ in range(18)]
    stop = threading.Event()

    def trickle() -> None:
        while not stop.wait(0.5):
            for sock in sockets:
                with contextlib.suppress(OSError):
                    sock.sendall(b"\x00")

    feeder = threading.Thread(target=trickle, daemon=True)
    feeder.start()
    try:
        time.sleep(1.5)  # every upload is inside its video part by now
        for _ in range(3):
            r = httpx.get(server.url + "/v1/jobs", timeout=5)
            assert r.status_code == 200, r.text
            ready = httpx.get(server.url + "/readyz", timeout=5)
            assert ready.json()["checks"]["database"] == "ok", ready.text
            time.sleep(0.5)
    finally:
        stop.set()
        feeder.join()
        for sock in sockets:
            sock.close()


def small_avi(path: Path) -> bytes:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 5.0, (64, 48))
    for i in range(5):
        writer.write(np.full((48, 64, 3), i * 20, np.uint8))
    writer.release()
    return path.read_bytes()


def test_an_epilogue_past_the_cap_is_413(make_client, web_db_url, tmp_path) -> None:
    """The video is under the cap; 3 MiB of epilogue after the closing boundary are not free either
    (sent chunked, so no Content-Length announces them)."""
    client = make_client(max_upload_mb=0.1)
    video = small_avi(tmp_path / "small.avi")
    assert len(video) < 0.1 * 1024 * 1024

    def body() -> Iterator[bytes]:
        yield PART_HEAD + video + b"\r\n--b--\r\n"
        for _ in range(3 * 16):
            yield b"e" * (64 << 10)

    r = client.post("/v1/jobs", content=body(), headers={"content-type": "multipart/form-data; boundary=b"})
    assert r.status_code == 413, r.text
    assert sql(web_db_url, "SELECT count(*) FROM pose_uploads")[0][0] == 0
