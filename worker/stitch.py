"""The last step of a split job: its segments' frames become its own, one track per person throughout.

The database queues a parent again once all its segments succeeded (migration 0007's trigger); the
worker that claims it runs :func:`stitch`, here in the worker process (it is database work: no child,
no pipeline). Track ids are matched in the overlaps (worker/segments.py), then one transaction
copies each segment's own frames into the parent's rows with the parent's ids, records the success
and removes the segments' rows (JobStore.stitch).
"""

from __future__ import annotations

import json
import logging
from typing import Any

from jobs.job import Job
from jobs.states import JobState
from jobs.store import JobStore, Outcome, StitchPart
from worker.segments import match_tracks, merge_documents, parent_track_ids

log = logging.getLogger(__name__)


class CannotStitch(Exception):
    """The segments are not what a stitch needs (one missing or not succeeded): a bug or an operator's
    hand, never a reason to retry."""


def _tracks(segment: Any) -> list[dict[str, Any]]:
    """A segment's track summary (pose_results.tracks, jsonb: already Python objects)."""
    return list(segment.tracks or [])


def stitch(store: JobStore, parent: Job, worker_id: str) -> Outcome:
    """Stitch ``parent``'s segments into it and record its success (one transaction)."""
    segments = store.segments(parent.id)
    if len(segments) != parent.segment_count or any(s.state != JobState.SUCCEEDED for s in segments):
        states = ", ".join(f"{s.segment_index}: {s.state}" for s in segments)
        raise CannotStitch(f"expected {parent.segment_count} succeeded segments, found [{states}]")
    tracks = [[int(t["track_id"]) for t in _tracks(s)] for s in segments]
    matches: list[dict[int, int]] = []
    for earlier, later in zip(segments, segments[1:], strict=False):
        if earlier.segment_stop is None or earlier.segment_stop <= later.segment_first:
            matches.append({})  # no overlap to compare: new ids
            continue
        window = (later.segment_first, earlier.segment_stop)
        matches.append(match_tracks(store.segment_boxes(earlier.id, earlier.attempt, *window),
                                    store.segment_boxes(later.id, later.attempt, *window)))
    maps = parent_track_ids(tracks, matches)
    parts: list[StitchPart] = []
    frames = 0
    for k, segment in enumerate(segments):
        stop = segments[k + 1].segment_first if k + 1 < len(segments) else None
        owned = (stop - segment.segment_first) if stop is not None else segment.frames_done
        frames += min(segment.frames_done, owned)
        people = sum(int(t.get("frames", 0)) for t in _tracks(segment))
        parts.append(StitchPart(segment.id, segment.attempt, segment.segment_first, stop, maps[k],
                                rows=people + segment.frames_done))
    documents = [json.loads(s.document) for s in segments]
    document = merge_documents(documents, frames)
    continued = sum(len(m) for m in matches)
    log.info("stitching %d segments: %d frames, %d track(s) continued across the cuts, %d in all",
             len(segments), frames, continued, len({i for m in maps for i in m.values()}))
    return store.stitch(parent, worker_id, parts, json.dumps(document, separators=(",", ":")), frames)
