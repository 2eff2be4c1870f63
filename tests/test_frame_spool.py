"""The binary frame spool (worker/frame_spool.py): what the child writes is what PostgreSQL stores, the
worker refuses a spool that is not what the child writes, stamps its own job id and attempt, and both
sides hold a bounded window of frames. Memory is checked as growth bounds, never as times."""

from __future__ import annotations

import io
import json
import struct
import tracemalloc
import warnings
from pathlib import Path

import numpy as np
import psycopg
import pytest

from jobs.database import libpq_url
from jobs.job import Job
from jobs.store import JobStore
from tests.fake_pipelines import person
from worker.frame_spool import BLOCK_HEADER, PERSON_FIELDS, BlockEncoder, read_block
from worker.frame_writer import FrameWriter

HEAD = {"schema": "pose-service/result@1", "video": {"frames": 0}, "keypoint_names": [f"kp{i}" for i in range(33)]}


def frame(i: int, people: int = 2) -> dict:
    return {"index": i, "time_s": round(i / 30.0, 6), "people": [person(i, t) for t in range(1, people + 1)]}


#: Frames of every shape a pipeline may hand over: ordinary ones, numpy arrays, nobody in view, a
#: person with a backend's extra fields (numpy among them), one without world points or score, one with
#: another keypoint count, a frame whose people differ in shape.
ODD_FRAMES = [
    frame(0),
    {"index": 1, "time_s": 0.033333, "people": []},
    {"index": 2, "time_s": 0.066667, "people": [
        {**person(2, 1), "keypoints": np.array(person(2, 1)["keypoints"]), "world": np.array(person(2, 1)["world"]),
         "bbox": np.array(person(2, 1)["bbox"], dtype=np.float32)}]},
    {"index": 3, "time_s": 0.1, "people": [{**person(3, 1), "mean_bgr": [1, 2, 3], "smpl": np.array([0.5, 0.25])},
                                           person(3, 2)]},
    {"index": 5, "time_s": 0.166667, "people": [{**person(5, 4), "world": None, "score": None}]},
    {"index": 6, "time_s": 0.2, "people": [{**person(6, 1), "keypoints": person(6, 1)["keypoints"][:17]},
                                           person(6, 2)]},
    {"index": 7, "time_s": 0.233333, "people": [{**person(7, 1), "world": []}]},
    frame(8, people=3),
]


def write_spool(path: Path, frames: list[dict], per_block: int = 3) -> None:
    encoder = BlockEncoder()
    with open(path, "wb") as fh:
        for f in frames:
            encoder.add(f)
            if encoder.frames == per_block:
                encoder.write(fh)
        if not encoder.empty:
            encoder.write(fh)


def blocks_of(path: Path, job_id: int, attempt: int) -> list:
    size = path.stat().st_size
    with open(path, "rb") as fh:
        out = []
        while fh.tell() < size:
            out.append(read_block(fh, size - fh.tell(), job_id, attempt))
        return out


def claimed(store: JobStore) -> Job:
    job, _ = store.submit("/videos/a.mp4")
    got = store.claim("w", 60)
    assert got is not None and got.id == job.id
    return got


def as_json(value: object) -> object:
    """What a frame means in result@1: numpy arrays as lists, numbers as float32 shortest text reads back."""
    return json.loads(json.dumps(value, default=lambda o: o.tolist()))


def test_what_the_child_writes_is_what_postgresql_stores(store: JobStore, database_url: str, tmp_path: Path):
    """Every shape of frame, through the spool and the worker's COPY, is stored exactly as the dict path
    (JobStore.store_frames, psycopg's own binary COPY of the same frames) stores it."""
    spool = tmp_path / "frames"
    write_spool(spool, ODD_FRAMES)
    via_spool, via_dicts = claimed(store), claimed(store)
    blocks = blocks_of(spool, via_spool.id, via_spool.attempt)
    assert sum(b.frames for b in blocks) == len(ODD_FRAMES) and sum(b.rows for b in blocks) == 13
    assert store.store_frame_tuples(via_spool, "w", [], 0, 0, first_batch=True)
    for block in blocks:
        assert store.store_frame_tuples(via_spool, "w", [block.payload], block.first, block.last, first_batch=False)
    assert store.store_frames(via_dicts, "w", [as_json(f) for f in ODD_FRAMES], first_batch=True)
    for job in (via_spool, via_dicts):
        assert store.succeed(job, "w", json.dumps(HEAD), 9, 9, frames_stored=True).owned
    ours, theirs = store.result(via_spool.id), store.result(via_dicts.id)
    assert ours["frames"] == theirs["frames"]
    assert [f["index"] for f in ours["frames"]] == [f["index"] for f in ODD_FRAMES]
    assert ours["frames"][3]["people"][0]["mean_bgr"] == [1, 2, 3] and ours["frames"][3]["people"][0]["smpl"] == [
        0.5, 0.25]
    assert ours["frames"][1]["people"] == [] and ours["frames"][4]["people"][0]["world"] == []
    assert ours["frames"][0] == as_json(frame(0))
    with psycopg.connect(libpq_url(database_url)) as conn:
        rows = conn.execute("SELECT job_id, attempt, count(*) FROM pose_frame_rows GROUP BY 1, 2 ORDER BY 1").fetchall()
    assert rows == [(via_spool.id, 1, 13), (via_dicts.id, 1, 13)], "the worker's job id and attempt in every row"


def test_person_fields_match_the_store():
    from jobs.store import PERSON_FIELDS as STORED

    assert PERSON_FIELDS == STORED


def test_a_spool_that_is_not_what_the_child_writes_is_refused(tmp_path: Path):
    spool = tmp_path / "frames"
    write_spool(spool, [frame(i) for i in range(4)], per_block=4)
    good = spool.read_bytes()
    _, frames, rows, size = BLOCK_HEADER.unpack(good[:BLOCK_HEADER.size])
    offsets_at, payload_at = BLOCK_HEADER.size, BLOCK_HEADER.size + 4 * rows
    row_size = size // rows

    def refused(data: bytes, match: str, available: int | None = None) -> None:
        with pytest.raises(ValueError, match=match):
            read_block(io.BytesIO(data), len(data) if available is None else available, 1, 1)

    assert read_block(io.BytesIO(good), len(good), 1, 1).frames == 4
    refused(good[:-1], "does not fit|shorter")
    refused(good, "does not fit", available=len(good) - 10)  # announced less than the block
    refused(b"XXXX" + good[4:], "no block")
    refused(good[:8], "header")
    # an offset that is not a row's start, with the row lengths still adding up
    moved = bytearray(good)
    struct.pack_into(">I", moved, offsets_at + 4, row_size + 2)
    refused(bytes(moved), "offsets|length|columns|fields")
    # a row whose column count is wrong
    wrong = bytearray(good)
    struct.pack_into(">h", wrong, payload_at + row_size, 9)
    refused(bytes(wrong), "columns|different fields")
    # a field length that runs the row past the next row's start
    long = bytearray(good)
    struct.pack_into(">i", long, payload_at + row_size + 2 + 4 + 8 + 4 + 4 + 4 + 4 + 4 + 8 + 4 + 4, 9)
    refused(bytes(long), "different fields|offsets|length")
    # the header lies about the frames
    lying = bytearray(good)
    struct.pack_into(">I", lying, 4, frames - 1)
    refused(bytes(lying), "says 3 frames")
    # frames out of order inside a block
    swapped = bytearray(good)
    swapped[payload_at:payload_at + 2 * row_size], swapped[payload_at + 4 * row_size:payload_at + 6 * row_size] = (
        good[payload_at + 4 * row_size:payload_at + 6 * row_size], good[payload_at:payload_at + 2 * row_size])
    refused(bytes(swapped), "out of order")


def test_the_child_refuses_what_a_result_cannot_hold():
    encoder = BlockEncoder()
    encoder.add(frame(3))
    with pytest.raises(ValueError, match="increasing"):
        encoder.add(frame(3))
    with pytest.raises(ValueError, match="track_id"):
        encoder.add({"index": 4, "time_s": 0.1, "people": [{**person(4, 1), "track_id": 2**31}]})
    with pytest.raises(ValueError, match="score"):
        encoder.add({"index": 5, "time_s": 0.1, "people": [{**person(5, 1), "score": float("nan")}]})
    with pytest.raises(ValueError, match="time_s"):
        encoder.add({"index": 6, "time_s": float("inf"), "people": []})
    with pytest.raises(ValueError, match="extra fields"):
        encoder.add({"index": 7, "time_s": 0.1, "people": [{**person(7, 1), "thing": object()}]})
    bad = person(8, 1)
    bad["keypoints"][4][1] = float("nan")
    encoder.add({"index": 8, "time_s": 0.2, "people": [bad]})
    with pytest.raises(ValueError, match="frame 8's keypoints .* not a finite"):
        encoder.write(io.BytesIO())
    huge = BlockEncoder()
    with warnings.catch_warnings():  # numpy may warn of the overflow as it copies the numbers into float32
        warnings.simplefilter("ignore", RuntimeWarning)
        huge.add({"index": 0, "time_s": 0.0, "people": [{**person(0, 1), "bbox": [1e39, 0, 1, 1]}]})
    with pytest.raises(ValueError, match="bbox"):
        huge.write(io.BytesIO())


# ---- the worker's side --------------------------------------------------------------------------------
def _rows(url: str, job_id: int) -> list[tuple]:
    with psycopg.connect(libpq_url(url)) as conn:
        return conn.execute("SELECT attempt, frame_index, track_id FROM pose_frame_rows WHERE job_id = %s "
                            "ORDER BY frame_index, track_id", (job_id,)).fetchall()


def test_the_writer_stores_every_frame_with_two_streams_and_a_repeated_batch_once(
        store: JobStore, database_url: str, tmp_path: Path):
    spool = tmp_path / "frames"
    write_spool(spool, [frame(i) for i in range(1000)], per_block=64)
    job = claimed(store)
    writer = FrameWriter(store, job, "w", spool, give_up=lambda: False, streams=2)
    writer.announce(spool.stat().st_size)
    writer.finish()
    assert (writer.stored, writer.error, writer.lost) == (1000, None, False)
    assert _rows(database_url, job.id) == [(1, i, t) for i in range(1000) for t in (1, 2)]
    block = blocks_of(spool, job.id, job.attempt)[3]
    for _ in range(2):  # sent again after a lost reply: replaces its own frames
        assert store.store_frame_tuples(job, "w", [block.payload], block.first, block.last, first_batch=False,
                                        repeat=True)
    assert len(_rows(database_url, job.id)) == 2000


def test_a_writer_fenced_out_stops_and_stores_nothing_more(store: JobStore, database_url: str, tmp_path: Path):
    spool = tmp_path / "frames"
    write_spool(spool, [frame(i) for i in range(300)], per_block=64)
    job = claimed(store)
    assert store.release(job, "w").owned  # given back: the attempt is no longer this worker's
    writer = FrameWriter(store, job, "w", spool, give_up=lambda: False)
    writer.announce(spool.stat().st_size)
    writer.finish()
    assert writer.lost and writer.stored == 0 and writer.error is None
    assert _rows(database_url, job.id) == []


def test_rows_postgresql_refuses_end_the_writer_with_its_error(store: JobStore, database_url: str, tmp_path: Path):
    """A block well formed as COPY tuples but not as pose_frame_rows (here an array of float8 elements
    where real[] is expected) is PostgreSQL's to refuse: the writer keeps the refusal (result_rejected)."""
    spool = tmp_path / "frames"
    write_spool(spool, [frame(i) for i in range(130)], per_block=64)
    data = bytearray(spool.read_bytes())
    third = 0
    for _ in range(2):  # blocks of 64 frames: the first two are the first batch (stored alone), the third the next
        _, _, rows, size = BLOCK_HEADER.unpack_from(data, third)
        third += BLOCK_HEADER.size + 4 * rows + size
    rows = BLOCK_HEADER.unpack_from(data, third)[2]
    # the first row's bbox: after the column count and job_id … score, its length, dimensions and flags
    oid_at = third + BLOCK_HEADER.size + 4 * rows + 2 + (4 + 8) + (4 + 4) * 2 + (4 + 8) + (4 + 4) * 2 + 4 + 4 + 4
    assert struct.unpack_from(">i", data, oid_at)[0] == 700
    struct.pack_into(">i", data, oid_at, 701)
    spool.write_bytes(bytes(data))
    job = claimed(store)
    writer = FrameWriter(store, job, "w", spool, give_up=lambda: False)
    writer.announce(len(data))
    writer.finish()
    assert writer.error is not None and "element type" in str(writer.error) and not writer.lost
    assert writer.stored == 128


# ---- bounded memory on both sides ---------------------------------------------------------------------
def _peak(fn) -> int:
    tracemalloc.start()
    try:
        fn()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_the_synthetic_pipeline_through_the_child_holds_a_block_whatever_the_length(tmp_path: Path):
    from bench.synthetic_pipeline import create
    from worker.child_protocol import JobRequest
    from worker.pipeline.child import Reporter, run_one

    peaks, spooled = [], []
    for frames in (1000, 4000):
        request = JobRequest(1, "/videos/none.mp4", {"frames": frames, "people": 4, "fps": 60},
                             str(tmp_path / f"r{frames}.json"))
        channel = io.BytesIO()
        peaks.append(_peak(lambda request=request, channel=channel: run_one(create(), request, Reporter(channel))))
        spooled.append(Path(request.spool_path).stat().st_size)
        assert b'"type": "done"' in channel.getvalue().splitlines()[-1]
    assert spooled[1] > 4 * spooled[0] * 0.99 and spooled[1] > 30_000_000
    # one block of the synthetic pipeline's numbers (256 frames of 4 people, float64) and one of the spool's
    assert peaks[1] < 1.2 * peaks[0] and peaks[1] < spooled[1] / 3, (peaks, spooled)


def test_the_writer_holds_a_few_batches_whatever_the_length(store: JobStore, tmp_path: Path):
    peaks, sizes = [], []
    for frames in (1000, 4000):
        spool = tmp_path / f"frames{frames}"
        write_spool(spool, [frame(i, people=4) for i in range(frames)], per_block=64)
        job = claimed(store)

        def write(job=job, spool=spool, frames=frames) -> None:
            writer = FrameWriter(store, job, "w", spool, give_up=lambda: False, streams=2)
            writer.announce(spool.stat().st_size)
            writer.finish()
            assert writer.stored == frames and writer.error is None

        peaks.append(_peak(write))
        sizes.append(spool.stat().st_size)
    assert sizes[1] > 30_000_000
    assert peaks[1] < 1.3 * peaks[0] and peaks[1] < sizes[1] / 4, (peaks, sizes)


def test_an_ordinary_batch_is_fenced_at_its_end_and_never_holds_up_the_heartbeat(
        store: JobStore, database_url: str, tmp_path: Path):
    """A batch after the first COPYs its rows, then fences: while it COPYs, the job's row is not locked
    (the heartbeat's update goes through at once); fenced out at its end, it is rolled back."""
    from jobs.store import COPY_BINARY_HEADER, COPY_BINARY_TRAILER

    spool = tmp_path / "frames"
    write_spool(spool, [frame(i) for i in range(6)], per_block=2)
    job = claimed(store)
    first, second, third = blocks_of(spool, job.id, job.attempt)
    assert store.store_frame_tuples(job, "w", [first.payload], first.first, first.last, first_batch=True)
    with psycopg.connect(libpq_url(database_url)) as copying:  # a batch caught in the middle of its COPY
        with copying.cursor() as cur, cur.copy(
                "COPY pose_frame_rows (job_id, attempt, frame_index, time_s, track_id, score, bbox, keypoints, "
                "world, extra) FROM STDIN (FORMAT BINARY)") as data:
            data.write(COPY_BINARY_HEADER + bytes(second.payload) + COPY_BINARY_TRAILER)
        quick = JobStore.connect(database_url, call_timeout_s=2)
        try:
            assert quick.record_progress(job, "w", 4, 6, 30) is False  # not blocked by the open COPY
        finally:
            quick.close()
        copying.rollback()
    assert store.release(job, "w").owned  # the attempt is given back (its rows go with it)
    assert not store.store_frame_tuples(job, "w", [third.payload], third.first, third.last, first_batch=False)
    assert _rows(database_url, job.id) == [], "the fenced-out batch was rolled back"
