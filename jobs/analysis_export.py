"""Exports of a job's analysis for spreadsheets and OpenSim (``GET /v1/jobs/{id}/export``, ``pose-service
export``), streamed ``PAGE_FRAMES`` frames per statement, so memory stays at a page whatever the length.

- ``csv``: one row per frame × track (frames the track was seen in or analysed over), columns
  ``frame_index, time_s, track_id``, then every filtered angle and yaw (``<name>_deg``), then per keypoint
  the image coordinates, visibility and presence (``<kp>_x_px, <kp>_y_px, <kp>_z_px, <kp>_visibility,
  <kp>_presence``) and the world landmarks (``<kp>_world_x_m`` ...; result@1's axes). An empty field is
  a value not known. An analysis of an uploaded file has no stored keypoints: its CSV has the angles.
- ``trc``: OpenSim's marker file of one track's world landmarks, in metres, every BlazePose keypoint
  a marker named as in result@1; OpenSim's axes (X right, Y up, Z towards the camera: x, −y, −z of
  result@1); ``Frame#`` is the frame index + 1, ``Time`` the frame's time in the video; frames in which
  the track was not seen have empty fields (OpenSim reads them as missing markers).
- ``mot``: OpenSim's storage file of one track's filtered angles and yaws, degrees (``inDegrees=yes``),
  a row per analysed frame, ``NaN`` where unknown.

TRC and MOT hold one person: ``track`` chooses it, and may be left out only when the analysis has one
track (otherwise :class:`TrackRequired`, a 422 that lists the tracks).
"""

from __future__ import annotations

from collections.abc import Iterator
from enum import StrEnum

from jobs.analyses import YAW_NAMES, AnalysisRef, AnalysisUnavailable, analysis_tracks, series_window
from jobs.store import JobStore

PAGE_FRAMES = 256


class ExportFormat(StrEnum):
    CSV = "csv"
    TRC = "trc"
    MOT = "mot"

    @property
    def media_type(self) -> str:
        return "text/csv" if self is ExportFormat.CSV else "text/plain"


class TrackRequired(ValueError):
    """A one-person format asked of an analysis with several tracks, without ``track``."""


def _keypoint_names(store: JobStore, job_id: int | None) -> list[str]:
    if job_id is None:
        return []
    with store.transaction() as tx:
        row = tx.one("export_keypoint_names", id=job_id)
    return list(row.keypoint_names or []) if row is not None else []


def choose_track(store: JobStore, ref: AnalysisRef, track: int | None) -> int:
    """The track a one-person export describes."""
    tracks = [t.track_id for t in analysis_tracks(store, ref.analysis_id)]
    if track is not None:
        if track not in tracks:
            raise AnalysisUnavailable("track_not_found", f"the analysis has no track {track} (tracks: "
                                      f"{', '.join(map(str, tracks)) or 'none'})")
        return track
    if len(tracks) == 1:
        return tracks[0]
    if not tracks:
        raise AnalysisUnavailable("track_not_found", "the analysis has no tracks")
    raise TrackRequired(f"this format holds one person and the analysis has {len(tracks)} tracks: choose one with "
                        f"track ({', '.join(map(str, tracks))})")


def filename(ref: AnalysisRef, fmt: ExportFormat, track: int | None) -> str:
    job = ref.source_job_id or ref.job_id
    return f"job{job}" + (f"_track{track}" if track is not None else "") + f".{fmt.value}"


def export(store: JobStore, ref: AnalysisRef, fmt: ExportFormat, track: int | None = None) -> Iterator[str]:
    """The export in pieces. Raises (before the first piece, when called through :func:`open_export`)
    TrackRequired or AnalysisUnavailable."""
    if fmt is ExportFormat.CSV:
        return _csv(store, ref, track)
    chosen = choose_track(store, ref, track)
    if fmt is ExportFormat.TRC:
        if ref.source_job_id is None:
            raise AnalysisUnavailable("keypoints_not_stored", "an analysis of an uploaded file keeps its angles, "
                                      "not its keypoints: there are no world landmarks to export as TRC")
        return _trc(store, ref, chosen)
    return _mot(store, ref, chosen)


def _angle_columns(ref: AnalysisRef) -> list[str]:
    return [*ref.angle_names, *YAW_NAMES]


def _page_values(store: JobStore, ref: AnalysisRef, first: int, stop: int,
                 track: int | None) -> dict[tuple[int, int], dict[str, str]]:
    """{(frame, track): {name: value text ('' unknown)}} of the filtered angles and yaws."""
    values: dict[tuple[int, int], dict[str, str]] = {}
    for series in ("angles", "yaw"):
        for row in series_window(store, ref.analysis_id, first, stop, track=track, series=series):
            for offset, value in enumerate(row.vals.split(",") if row.vals else ()):
                cell = "" if value == "null" else value
                values.setdefault((row.from_frame + offset, row.track_id), {})[row.name] = cell
    return values


def _span(store: JobStore, ref: AnalysisRef, track: int | None) -> tuple[int, int]:
    tracks = analysis_tracks(store, ref.analysis_id, tracks=[track] if track is not None else None)
    if not tracks:
        return 0, 0
    return min(t.first_frame for t in tracks), max(t.stop for t in tracks)


def _csv(store: JobStore, ref: AnalysisRef, track: int | None) -> Iterator[str]:
    names = _keypoint_names(store, ref.source_job_id)
    angles = _angle_columns(ref)
    columns = ["frame_index", "time_s", "track_id", *(f"{a}_deg" for a in angles)]
    for kp in names:
        columns += [f"{kp}_x_px", f"{kp}_y_px", f"{kp}_z_px", f"{kp}_visibility", f"{kp}_presence"]
    for kp in names:
        columns += [f"{kp}_world_x_m", f"{kp}_world_y_m", f"{kp}_world_z_m"]
    yield ",".join(columns) + "\n"
    first, stop = _span(store, ref, track)
    blank_people = "," * (8 * len(names))
    for lo in range(first, stop, PAGE_FRAMES):
        hi = min(stop, lo + PAGE_FRAMES)
        values = _page_values(store, ref, lo, hi, track)
        people: dict[tuple[int, int], tuple[str, str]] = {}
        times: dict[int, str] = {}
        if ref.source_job_id is not None:
            with store.transaction() as tx:
                for row in tx.all("export_people_page", id=ref.source_job_id, first=lo, stop=hi, track=track):
                    times[row.frame_index] = repr(row.time_s)
                    people[(row.frame_index, row.track_id)] = (row.keypoints, row.world)
        lines = []
        for frame, track_id in sorted(values.keys() | people.keys()):
            angle_values = values.get((frame, track_id), {})
            time_s = times.get(frame) or f"{frame / ref.fps:.6f}"
            cells = [str(frame), time_s, str(track_id), *(angle_values.get(a, "") for a in angles)]
            line = ",".join(cells)
            if names:
                kp_world = people.get((frame, track_id))
                line += ("," + kp_world[0] + "," + kp_world[1]) if kp_world else blank_people
            lines.append(line + "\n")
        yield "".join(lines)


def _trc(store: JobStore, ref: AnalysisRef, track: int) -> Iterator[str]:
    assert ref.source_job_id is not None
    with store.transaction() as tx:
        span = tx.one("export_track_span", id=ref.source_job_id, track=track)
    names = list(span.keypoint_names or [])
    if span.first is None or not names:
        raise AnalysisUnavailable("keypoints_not_stored", f"job {ref.source_job_id} has no stored keypoints of "
                                  f"track {track}")
    first, last = int(span.first), int(span.last)
    frames = last - first + 1
    fps = ref.fps
    out = [f"PathFileType\t4\t(X/Y/Z)\t{filename(ref, ExportFormat.TRC, track)}",
           "DataRate\tCameraRate\tNumFrames\tNumMarkers\tUnits\tOrigDataRate\tOrigDataStartFrame\tOrigNumFrames",
           f"{fps:g}\t{fps:g}\t{frames}\t{len(names)}\tm\t{fps:g}\t{first + 1}\t{frames}",
           "Frame#\tTime\t" + "\t".join(f"{n}\t\t" for n in names).rstrip("\t"),
           "\t\t" + "\t".join(f"X{i}\tY{i}\tZ{i}" for i in range(1, len(names) + 1)),
           ""]
    yield "\n".join(out) + "\n"
    blank = "\t" * (3 * len(names) - 1)
    for lo in range(first, last + 1, PAGE_FRAMES):
        hi = min(last + 1, lo + PAGE_FRAMES)
        with store.transaction() as tx:
            rows = {r.frame_index: r for r in tx.all("export_people_page", id=ref.source_job_id, first=lo, stop=hi,
                                                     track=track)}
        lines = []
        for frame in range(lo, hi):
            row = rows.get(frame)
            if row is None or not row.world:
                lines.append(f"{frame + 1}\t{frame / fps:.6f}\t{blank}\n")
                continue
            xyz = [float(v) for v in row.world.split(",")]
            cells = []
            for k in range(len(names)):
                x, y, z = xyz[3 * k:3 * k + 3]
                cells += [f"{x:.5f}", f"{-y:.5f}", f"{-z:.5f}"]
            lines.append(f"{frame + 1}\t{row.time_s:.6f}\t" + "\t".join(cells) + "\n")
        yield "".join(lines)


def _mot(store: JobStore, ref: AnalysisRef, track: int) -> Iterator[str]:
    (row,) = analysis_tracks(store, ref.analysis_id, tracks=[track])
    angles = _angle_columns(ref)
    yield "\n".join([filename(ref, ExportFormat.MOT, track), "version=1", f"nRows={row.frame_count}",
                     f"nColumns={1 + len(angles)}", "inDegrees=yes", "endheader",
                     "time\t" + "\t".join(angles)]) + "\n"
    for lo in range(row.first_frame, row.stop, PAGE_FRAMES):
        hi = min(row.stop, lo + PAGE_FRAMES)
        values = _page_values(store, ref, lo, hi, track)
        lines = []
        for frame in range(lo, hi):
            got = values.get((frame, track), {})
            lines.append(f"{frame / ref.fps:.6f}\t" + "\t".join(got.get(a) or "NaN" for a in angles) + "\n")
        yield "".join(lines)
