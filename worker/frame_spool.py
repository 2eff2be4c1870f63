"""The frame spool: a job's frames on their way from the pipeline child to PostgreSQL, already in the
form PostgreSQL's COPY takes them.

The child (worker/pipeline/child.py) appends one *block* per ``frames`` message (worker/child_protocol.py)
to the job's spool file: whole frames, in order. A block is

    header    ">4sIII": BLOCK_MAGIC, frames, rows, payload bytes
    offsets   rows × ">u4": where each row starts in the payload
    payload   the rows, each a tuple of PostgreSQL's binary COPY format in the columns of
              ``copy_frame_rows`` (jobs/sql/frames.sql): job_id, attempt, frame_index, time_s,
              track_id, score, bbox, keypoints, world, extra

with a row per person, or one row whose track_id … extra are NULL for a frame without people (what
``jobs.store.frame_rows`` makes of a result@1 frame): keypoints and world flattened, numbers as real
(float32), time_s as double precision, fields a backend adds under a person in ``extra`` (jsonb).
job_id and attempt are left 0: the worker owns them. It reads whole blocks (``read_block``), checks
that the offsets are the rows' true boundaries by walking every field's length word (numpy, over all
rows of a block at once), writes its job id and attempt into every row and hands the payloads to COPY
as they are. No frame is parsed or built in the worker, so storing costs it about a microsecond a row;
PostgreSQL's reading of the arrays is what bounds the rate. A block PostgreSQL cannot read (a field of
the wrong size, a wrong element type) is refused by PostgreSQL, as a bad value always was.

The child holds at most one block of frames (``BlockEncoder``: each frame's numbers copied into arrays
as the frame is added, a block encoded with numpy a layout at a time and written ``ENCODE_ROWS`` rows
at a time), the worker a few batches of blocks (worker/frame_writer.py).

Imported by the pipeline child and the worker: numpy and the standard library only.
"""

from __future__ import annotations

import json
import math
import struct
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import IO, Any, NamedTuple

import numpy as np

BLOCK_MAGIC = b"PFS1"
BLOCK_HEADER = struct.Struct(">4sIII")
#: The most a well-formed block can hold; a header claiming more is a corrupt spool.
MAX_BLOCK_BYTES = 1 << 30
#: copy_frame_rows' columns, of which every row has all.
COLUMNS = 10
#: What a person carries in its own columns; anything else goes to ``extra`` (as jobs.store.PERSON_FIELDS).
PERSON_FIELDS = frozenset({"track_id", "score", "bbox", "keypoints", "world"})
FLOAT4_OID = 700
INT4_MAX = 2**31 - 1
FLOAT4_MAX = float(np.finfo(np.float32).max)
JSONB_VERSION = b"\x01"
#: Rows encoded at a time (about 70 KB of tuples for BlazePose's 33 keypoints).
ENCODE_ROWS = 32


# ---- the child's side: encoding -----------------------------------------------------------------


def _array_fields(name: str, size: int) -> list[tuple[Any, ...]]:
    """A real[] of ``size`` elements (no NULLs) in binary COPY: length word, header, then each
    element with its own length word; an empty array has no dimensions."""
    if size == 0:
        return [(f"{name}_len", ">i4"), (f"{name}_ndim", ">i4"), (f"{name}_flags", ">i4"), (f"{name}_oid", ">i4")]
    return [(f"{name}_len", ">i4"), (f"{name}_ndim", ">i4"), (f"{name}_flags", ">i4"), (f"{name}_oid", ">i4"),
            (f"{name}_dim", ">i4"), (f"{name}_lbound", ">i4"), (name, [("len", ">i4"), ("v", ">f4")], (size,))]


_PREFIX = [("nfields", ">i2"), ("job_len", ">i4"), ("job_id", ">i8"), ("attempt_len", ">i4"), ("attempt", ">i4"),
           ("frame_len", ">i4"), ("frame_index", ">i4"), ("time_len", ">i4"), ("time_s", ">f8")]


@lru_cache(maxsize=64)
def _layout(key: tuple[int, int, int, bool, bool] | None) -> np.ndarray:
    """A one-row template of a row layout, its constant words filled in. ``key``: (bbox, keypoints,
    world sizes, has a score, ends with a NULL extra) for a person (a row with ``extra`` has its own
    bytes appended instead), or None for a frame without people."""
    fields: list[tuple[Any, ...]] = list(_PREFIX)
    if key is None:
        fields += [(f"null{i}", ">i4") for i in range(COLUMNS - 4)]
    else:
        bbox, keypoints, world, has_score, null_extra = key
        fields += [("track_len", ">i4"), ("track_id", ">i4"), ("score_len", ">i4")]
        fields += [("score", ">f4")] if has_score else []
        for name, size in (("bbox", bbox), ("keypoints", keypoints), ("world", world)):
            fields += _array_fields(name, size)
        fields += [("extra_len", ">i4")] if null_extra else []
    row = np.zeros(1, dtype=np.dtype(fields))
    row["nfields"], row["job_len"], row["attempt_len"], row["frame_len"], row["time_len"] = COLUMNS, 8, 4, 4, 8
    if key is None:
        for i in range(COLUMNS - 4):
            row[f"null{i}"] = -1
        return row
    bbox, keypoints, world, has_score, null_extra = key
    row["track_len"], row["score_len"] = 4, (4 if has_score else -1)
    for name, size in (("bbox", bbox), ("keypoints", keypoints), ("world", world)):
        row[f"{name}_len"], row[f"{name}_oid"] = (20 + 8 * size if size else 12), FLOAT4_OID
        if size:
            row[f"{name}_ndim"], row[f"{name}_dim"], row[f"{name}_lbound"] = 1, size, 1
            row[name]["len"] = 4
    if null_extra:
        row["extra_len"] = -1
    return row


def _jsonable(value: Any) -> Any:
    if isinstance(value, np.ndarray | np.generic):
        return value.tolist()
    raise TypeError(f"{type(value).__name__} in a person's extra fields is not JSON")


#: A row layout: (bbox, keypoints, world sizes, has a score, no extra), or None: a frame without people.
_Key = tuple[int, int, int, bool, bool] | None


class _Group(NamedTuple):
    """Rows of one frame in one layout, waiting for their block: every person of an ordinary frame
    (numbers as (people, values) float32 arrays), one person of an unusual one, or a frame without
    people (key None, one row)."""

    key: _Key
    frame: int
    time_s: float
    rows: int
    tracks: list[int]
    scores: list[float | None] | None
    bbox: np.ndarray | None
    keypoints: np.ndarray | None
    world: np.ndarray | None
    extra: bytes | None  # JSON, of a group of one person


_NOBODY: tuple[list[int], None, None, None, None, None] = ([], None, None, None, None, None)


class BlockEncoder:
    """Collects frames (result@1 frame objects, in increasing index) and writes them as one block.

    ``add`` copies the frame's numbers into arrays at once (one copy per field for a frame
    whose people all have the same fields and shapes, per person otherwise), so the caller may reuse
    or drop the frame. What a result could not hold (a frame out of order, a track id beyond
    PostgreSQL's integer, a score that is not a finite float32) raises ValueError there, in the
    pipeline's call; NaN or infinite coordinates raise when the block is written."""

    def __init__(self) -> None:
        self._groups: list[_Group] = []
        self.frames = 0
        self.rows = 0
        self.last_index = -1

    def add(self, frame: Mapping[str, Any]) -> None:
        index, time_s = int(frame["index"]), float(frame["time_s"])
        if not self.last_index < index <= INT4_MAX:
            raise ValueError(f"frame index {index} after {self.last_index}: frames go in increasing index")
        if not math.isfinite(time_s):
            raise ValueError(f"frame {index}: time_s {time_s} is not finite")
        people = frame.get("people") or ()
        if not people:
            groups = [_Group(None, index, time_s, 1, *_NOBODY)]
        else:
            tracks = [int(p["track_id"]) for p in people]
            if not -INT4_MAX <= min(tracks) <= max(tracks) <= INT4_MAX:
                raise ValueError(f"frame {index}: a track_id beyond PostgreSQL's integer in {tracks}")
            scores = [None if p.get("score") is None else float(p["score"]) for p in people]
            if not all(s is None or (math.isfinite(s) and abs(s) <= FLOAT4_MAX) for s in scores):
                raise ValueError(f"frame {index}: a score that is not a finite float32 in {scores}")
            groups = _frame_group(index, time_s, people, tracks, scores) or [
                _person_group(index, time_s, p, t, s) for p, t, s in zip(people, tracks, scores, strict=True)]
        self._groups.extend(groups)
        self.frames += 1
        self.rows += sum(g.rows for g in groups)
        self.last_index = index

    @property
    def empty(self) -> bool:
        return not self._groups

    def write(self, fh: IO[bytes]) -> int:
        """Append the collected frames to ``fh`` as one block and start a new one; the block's bytes.
        The rows are encoded and written about ``ENCODE_ROWS`` at a time after the offsets, which the
        layouts alone give, so the encoder's own memory is a fraction of a block. (A value found not
        finite there raises with the block half written; the worker never reads past the last block
        announced, and the job fails.)"""
        groups = self._groups
        runs: list[tuple[int, int, bytes]] = []  # groups [start, stop) of one layout, and a tail (extra)
        offsets: list[np.ndarray] = []
        size = start = 0
        while start < len(groups):
            key, stop = groups[start].key, start + 1
            if key is None or key[4]:  # a run of groups of one layout (a person with extra goes alone)
                while stop < len(groups) and groups[stop].key == key:
                    stop += 1
            itemsize, rows = _layout(key).dtype.itemsize, sum(g.rows for g in groups[start:stop])
            extra = groups[start].extra
            tail = b"" if extra is None else struct.pack(">i", 1 + len(extra)) + JSONB_VERSION + extra
            offsets.append(size + itemsize * np.arange(rows, dtype=np.int64))
            size += itemsize * rows + len(tail)
            runs.append((start, stop, tail))
            start = stop
        if size > MAX_BLOCK_BYTES:
            raise ValueError(f"a block of {self.frames} frames would take {size} bytes")
        header = BLOCK_HEADER.pack(BLOCK_MAGIC, self.frames, self.rows, size)
        fh.write(header)
        if offsets:
            fh.write(np.concatenate(offsets).astype(">u4").tobytes())
        for start, stop, tail in runs:
            chunk = start
            while chunk < stop:
                end, rows = chunk, 0
                while end < stop and (rows < ENCODE_ROWS or end == chunk):
                    rows += groups[end].rows
                    end += 1
                fh.write(_encode(groups[chunk:end]).data)
                chunk = end
            if tail:
                fh.write(tail)
        written = len(header) + 4 * self.rows + size
        self._groups, self.frames, self.rows = [], 0, 0
        return written


def _frame_group(index: int, time_s: float, people: Any, tracks: list[int], scores: list[float | None]) -> list[_Group]:
    """The frame's people as one group, when they all have exactly the five fields, a score, and
    numbers of one shape each; else [] (each person then goes alone)."""
    if any(s is None for s in scores) or not all(len(p) == 5 and p.keys() <= PERSON_FIELDS for p in people):
        return []
    n = len(people)
    try:  # float32 copies: a value too large for float32 becomes infinite (numpy warns), refused when written
        bbox = np.array([p["bbox"] for p in people], dtype=np.float32).reshape(n, -1)
        keypoints = np.array([p["keypoints"] for p in people], dtype=np.float32).reshape(n, -1)
        world = np.array([p["world"] for p in people], dtype=np.float32).reshape(n, -1)
    except (ValueError, TypeError):  # ragged, missing or empty numbers: the general way
        return []
    key = (bbox.shape[1], keypoints.shape[1], world.shape[1], True, True)
    return [_Group(key, index, time_s, n, tracks, scores, bbox, keypoints, world, None)]


def _person_group(index: int, time_s: float, person: Mapping[str, Any], track: int, score: float | None) -> _Group:
    """One person in any shape: keypoints and world flattened (world may be missing or empty)."""
    world = person.get("world")
    extra = {k: v for k, v in person.items() if k not in PERSON_FIELDS}
    bbox = np.array(person["bbox"], dtype=np.float32).reshape(1, -1)
    keypoints = np.array(person["keypoints"], dtype=np.float32).reshape(1, -1)
    points = np.array(world if world is not None else (), dtype=np.float32).reshape(1, -1)
    key = (bbox.shape[1], keypoints.shape[1], points.shape[1], score is not None, not extra)
    try:
        text = json.dumps(extra, separators=(",", ":"), allow_nan=False, default=_jsonable) if extra else None
    except TypeError as exc:
        raise ValueError(f"frame {index}: {exc}") from None
    return _Group(key, index, time_s, 1, [track], None if score is None else [score], bbox, keypoints, points,
                  None if text is None else text.encode())


def _encode(groups: list[_Group]) -> np.ndarray:
    """Groups of one layout as an array of binary COPY tuples (numpy: a few calls, not a few per row)."""
    key = groups[0].key
    counts = [g.rows for g in groups]
    out = np.repeat(_layout(key), sum(counts))
    out["frame_index"] = np.repeat([g.frame for g in groups], counts)
    out["time_s"] = np.repeat([g.time_s for g in groups], counts)
    if key is None:
        return out
    out["track_id"] = [t for g in groups for t in g.tracks]
    if key[3]:
        out["score"] = [s for g in groups for s in g.scores or ()]
    for name, size in (("bbox", key[0]), ("keypoints", key[1]), ("world", key[2])):
        if size:
            values = np.concatenate([getattr(g, name) for g in groups])
            if not np.isfinite(values.min() + values.max()):  # NaN or infinite (too large for float32) somewhere
                bad = int(np.repeat([g.frame for g in groups], counts)[np.flatnonzero(~np.isfinite(values).all(1))[0]])
                raise ValueError(f"frame {bad}'s {name} has a value that is not a finite float32 "
                                 "(NaN, infinite or too large)")
            out[name]["v"] = values
    return out


# ---- the worker's side: reading, checking, stamping --------------------------------------------


@dataclass(frozen=True)
class Block:
    """One block as the worker stores it: its rows stamped with the job's id and attempt."""

    frames: int
    rows: int
    first: int  # the first and last frame index in it
    last: int
    payload: bytes | bytearray  # binary COPY tuples, without COPY's header and trailer

    @property
    def size(self) -> int:
        return BLOCK_HEADER.size + 4 * self.rows + len(self.payload)


def read_block(fh: IO[bytes], available: int, job_id: int, attempt: int) -> Block:
    """Read the block at ``fh``'s position, which has ``available`` complete bytes after it, check it
    and stamp its rows with ``job_id`` and ``attempt``. A spool that is not what the child writes
    (cut short, a bad header, rows not where the offsets say) raises ValueError."""
    at = fh.tell()
    if available < BLOCK_HEADER.size:
        raise ValueError(f"frame spool ends inside a block header at byte {at}")
    magic, frames, rows, size = BLOCK_HEADER.unpack(fh.read(BLOCK_HEADER.size))
    if magic != BLOCK_MAGIC:
        raise ValueError(f"frame spool has no block at byte {at}")
    if BLOCK_HEADER.size + 4 * rows + size > min(available, MAX_BLOCK_BYTES) or frames > rows or (rows and not frames):
        raise ValueError(f"frame spool block at byte {at} ({frames} frames, {rows} rows, {size} bytes) does not "
                         f"fit the {available} bytes announced")
    offsets = np.frombuffer(fh.read(4 * rows), dtype=">u4").astype(np.int64)
    payload = bytearray(size)
    if fh.readinto(payload) != size or len(offsets) != rows:  # type: ignore[attr-defined]
        raise ValueError(f"frame spool is shorter than announced (block at byte {at})")
    if not rows:
        return Block(0, 0, -1, -1, payload)
    first, last, counted = _check_and_stamp(payload, offsets, job_id, attempt, at)
    if counted != frames:
        raise ValueError(f"frame spool block at byte {at} says {frames} frames, its rows hold {counted}")
    return Block(frames, rows, first, last, payload)


_INT16 = struct.Struct(">h")
_INT32 = struct.Struct(">i")
#: Where job_id, attempt and frame_index sit in every row: after the column count and the length words.
_JOB_AT, _ATTEMPT_AT, _FRAME_AT = 2 + 4, 2 + 4 + 8 + 4, 2 + 4 + 8 + 4 + 4 + 4


def _walk(row: memoryview, bad: str) -> list[int]:
    """The positions of a row's column count and length words (2 + 4 × COLUMNS bytes), walking its
    fields; the walk must end exactly at the row's end. The first four columns must be non-NULL and of
    their types' sizes."""
    if len(row) < 2 or _INT16.unpack_from(row, 0)[0] != COLUMNS:
        raise ValueError(f"{bad} a row without {COLUMNS} columns")
    words, pos = [0, 1], 2
    for column in range(COLUMNS):
        if pos + 4 > len(row):
            raise ValueError(f"{bad} a row runs past its end")
        length = _INT32.unpack_from(row, pos)[0]
        if length < -1 or (column < 4 and length != (8, 4, 4, 8)[column]):
            raise ValueError(f"{bad} column {column} has length {length}")
        words.extend(range(pos, pos + 4))
        pos += 4 + max(length, 0)
    if pos != len(row):
        raise ValueError(f"{bad} rows are not where the offsets say")
    return words


def _check_and_stamp(
    payload: bytearray, starts: np.ndarray, job_id: int, attempt: int, at: int
) -> tuple[int, int, int]:
    """Check that every row is a COPY tuple of COLUMNS fields ending exactly where the next row starts,
    then write job_id and attempt into each. Returns (first, last frame index, frames).

    Rows come in runs of one layout (the encoder writes them so), so a run of rows of one length is
    checked at once: the first row's fields are walked, and every row of the run must have the same
    bytes at that row's column count and length words; walking any of them then gives the same fields,
    ending at the row's end. The whole block costs a few numpy calls per run, not per row."""
    buf = np.frombuffer(payload, dtype=np.uint8)
    size = len(payload)
    bad = f"frame spool block at byte {at}:"
    ends = np.append(starts[1:], size)
    lengths = ends - starts
    if starts[0] != 0 or (lengths <= 0).any():
        raise ValueError(f"{bad} row offsets out of order")
    view = memoryview(payload)
    job = np.frombuffer(job_id.to_bytes(8, "big", signed=True), np.uint8)
    tries = np.frombuffer(attempt.to_bytes(4, "big", signed=True), np.uint8)
    indexes = []
    cuts = [0, *(np.flatnonzero(np.diff(lengths)) + 1).tolist(), len(starts)]
    for a, b in zip(cuts[:-1], cuts[1:], strict=False):
        first, length, rows = int(starts[a]), int(lengths[a]), b - a
        words = _walk(view[first:first + length], bad)
        run = buf[first:first + rows * length].reshape(rows, length)
        if rows > 1 and not (run[1:, words] == run[0, words]).all():
            raise ValueError(f"{bad} rows of one length with different fields")
        run[:, _JOB_AT:_JOB_AT + 8] = job
        run[:, _ATTEMPT_AT:_ATTEMPT_AT + 4] = tries
        indexes.append(np.ascontiguousarray(run[:, _FRAME_AT:_FRAME_AT + 4]).view(">i4").ravel())
    index = np.concatenate(indexes)
    steps = np.diff(index)
    if index[0] < 0 or (steps < 0).any():
        raise ValueError(f"{bad} frames out of order")
    return int(index[0]), int(index[-1]), 1 + int(np.count_nonzero(steps))
