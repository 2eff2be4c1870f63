"""A 200 MB upload through a real uvicorn process: memory stays flat, so the body is streamed (to a spool
file), not buffered; and nothing reaches PostgreSQL while the client is still sending, so a slow or
big upload holds no database connection (web/uploads.py)."""

from __future__ import annotations

import os
import threading
import time

import httpx
import psutil

from tests.web.conftest import VIDEO, sql

MB = 1 << 20
TOTAL_MB = 200


def test_200_mb_upload_streams_with_flat_memory(start_server, web_db_url) -> None:
    server = start_server(env={"POSE_MAX_UPLOAD_MB": "400"})
    process = psutil.Process(server.proc.pid)
    with httpx.Client(base_url=server.url, timeout=60) as client:
        # warm up: the first upload imports OpenCV and fills the connection pool
        warm = client.post("/v1/jobs", files={"video": ("clip.mp4", VIDEO.read_bytes(), "video/mp4")})
        assert warm.status_code == 201, warm.text
        baseline = process.memory_info().rss
        peak = [baseline]
        stop = threading.Event()

        def sample() -> None:
            while not stop.is_set():
                peak[0] = max(peak[0], process.memory_info().rss)
                time.sleep(0.01)

        db_size = lambda: sql(web_db_url, "SELECT pg_database_size(current_database())")[0][0]  # noqa: E731
        size_before = db_size()
        grown_mid_upload: list[int] = []
        block = os.urandom(MB)  # incompressible, so PostgreSQL stores every byte

        def body():
            yield b'--XyZ\r\nContent-Disposition: form-data; name="video"; filename="big.mp4"\r\n'
            yield b"Content-Type: video/mp4\r\n\r\n"
            for i in range(TOTAL_MB):
                if i == TOTAL_MB * 3 // 4:  # three quarters sent: the database must not have been touched
                    grown_mid_upload.append(db_size() - size_before)
                yield block[i:] + block[:i]  # no two chunks alike
            yield b"\r\n--XyZ--\r\n"

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        started = time.monotonic()
        r = client.post("/v1/jobs", content=body(), headers={"content-type": "multipart/form-data; boundary=XyZ"})
        elapsed = time.monotonic() - started
        stop.set()
        sampler.join()
    assert r.status_code == 415, r.text  # random bytes: spooled, checked, refused, never stored
    growth_mb = (peak[0] - baseline) / MB
    print(
        f"200 MB upload in {elapsed:.1f} s; web RSS {baseline / MB:.0f} MB -> peak {peak[0] / MB:.0f} MB "
        f"(+{growth_mb:.1f} MB); database grew {grown_mid_upload[0] / MB:.0f} MB by 150 MB sent"
    )
    assert growth_mb < 50, f"web process grew by {growth_mb:.1f} MB during a 200 MB upload"
    assert grown_mid_upload[0] < 10 * MB, "the bytes reached PostgreSQL before the upload was complete"
    assert sql(web_db_url, "SELECT count(*) FROM pose_uploads WHERE id > 1")[0][0] == 0
