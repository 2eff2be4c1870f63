"""The sport analysis routes' contract (issue 13, DESIGN.md section 8), as pydantic models: what
clients send (a re-analysis, an upload's fields, the analysis and export queries) and the analysis@1
document they get, so /openapi.json describes every field and schemathesis checks the answers.

The document is served as PostgreSQL's numbers without a round trip through :class:`Analysis`
(jobs/analyses.py); the model exists for the description and the tests. Its conventions (ranges,
signs, zeros) are docs/analysis.md.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

from jobs.analysis_export import ExportFormat
from jobs.result_stream import FrameWindow
from web.error_codes import ErrorCode
from web.inputs import MAX_PRIORITY, frame_window
from web.validation import JSON_INT, QUERY_INT, PgJsonObject, invalid

MAX_TRACK_ID = 2**31 - 1
MAX_TRACKS = 100


class _Input(BaseModel):
    model_config = ConfigDict(extra="forbid")


class AnalysisRequest(_Input):
    """POST /v1/jobs/{id}/analyses: the analysis params (docs/analysis.md, "Params"; left out: the
    defaults) and the job's priority."""

    params: PgJsonObject | None = Field(default=None, description='analysis params, e.g. {"cutoff_hz": 8}')
    priority: Annotated[int, Field(ge=-MAX_PRIORITY, le=MAX_PRIORITY), JSON_INT] | None = Field(
        default=None, description="higher runs first; at most the token's ceiling (default 0)")


def _upload_form_schema(schema: dict[str, Any]) -> None:
    properties = schema["properties"]
    assert isinstance(properties, dict)
    properties["params"] = {"type": "string", "description": "the analysis params: a JSON object, as text"}
    properties["priority"] = {"type": "string", "pattern": "^-?[0-9]{1,7}$", "description": "an integer, as text"}
    properties["keypoints"] = {
        "type": "string", "format": "binary",
        "description": "a result@1 JSON document or a TRC file (OpenSim's marker format)",
    }
    schema["required"] = ["keypoints"]


class AnalysisUpload(_Input):
    """POST /v1/analyses as multipart/form-data: the ``keypoints`` part and these as text fields. Only the
    document uses this model; the fields are checked by AnalysisRequest."""

    model_config = ConfigDict(extra="forbid", json_schema_extra=_upload_form_schema)
    params: str | None = None
    priority: str | None = None


# ---- queries --------------------------------------------------------------------------------------
def _tracks(value: Any) -> Any:
    if isinstance(value, str):
        try:
            tracks = [int(t) for t in value.split(",")]
        except ValueError:
            raise invalid("tracks must be track ids separated by commas, e.g. 1,2",
                          ErrorCode.INVALID_PARAMETER) from None
        if not 1 <= len(tracks) <= MAX_TRACKS or not all(0 <= t <= MAX_TRACK_ID for t in tracks):
            raise invalid(f"tracks must be 1 to {MAX_TRACKS} track ids from 0 to {MAX_TRACK_ID}",
                          ErrorCode.INVALID_PARAMETER)
    return value


class AnalysisQuery(_Input):
    """GET /v1/jobs/{id}/analysis: which frames and which tracks."""

    frames: Annotated[str, BeforeValidator(frame_window)] | None = Field(
        default=None, description="frames A:B (index A up to, not including, B; A: or :B leave a side open)",
        pattern=r"^[0-9]*(:[0-9]*)?$", max_length=24)
    tracks: Annotated[str, BeforeValidator(_tracks)] | None = Field(
        default=None, description="only these tracks: ids separated by commas, e.g. 1,2",
        pattern=r"^[0-9]{1,10}(,[0-9]{1,10})*$", max_length=1100)

    @property
    def window(self) -> FrameWindow:
        return FrameWindow.parse(self.frames)

    @property
    def track_ids(self) -> list[int] | None:
        return None if self.tracks is None else [int(t) for t in self.tracks.split(",")]


class ExportQuery(_Input):
    """GET /v1/jobs/{id}/export: the format and, for TRC and MOT, the track."""

    format: ExportFormat = Field(description="csv: angles and keypoints, a row per frame and track; trc: one "
                                             "track's world landmarks (OpenSim markers, metres); mot: one "
                                             "track's angles (OpenSim storage, degrees)")
    track: Annotated[int, Field(ge=0, le=MAX_TRACK_ID), QUERY_INT] | None = Field(
        default=None, description="the track (required by trc and mot when the analysis has several)")


# ---- the document ---------------------------------------------------------------------------------
class _Closed(BaseModel):
    model_config = ConfigDict(extra="forbid")


Series = dict[str, list[float | None]]


class Provenance(_Closed):
    source: str | None = Field(description="what was analysed: 'job N' (its stored keypoints) or 'upload N'")
    model: dict[str, Any] | None = Field(description="the pose model of the keypoints (result@1's model); null: TRC")
    fps: float = Field(description="frames per second of the keypoints (from the video's container)")
    params: dict[str, Any] = Field(description="every analysis param with the value used")
    version: str = Field(description="the analysis code's version")


class Spin(_Closed):
    start_frame: int
    end_frame: int
    degrees: int = Field(description="the rotation rounded to the nearest 180")
    measured_degrees: float = Field(description="signed: positive counter-clockwise seen from above")
    direction: Literal["left", "right", "frontside", "backside"]


class AnalysisTrack(_Closed):
    track_id: int
    frames: list[int] = Field(description="every frame index of the track's span (of the window asked for)")
    filled: list[int] = Field(description="frames where a keypoint used was interpolated")
    outliers: list[int] = Field(description="frames where a keypoint used was replaced as an outlier")
    angles: Series = Field(description="degrees per frame, filtered; <name>: 3D, <name>_2d: from the image")
    angles_raw: Series = Field(description="degrees per frame from the keypoints as the pose stage gave them")
    angular_velocity: Series = Field(description="degrees per second of the filtered angles")
    yaw: list[float | None] = Field(description="the body's facing direction, degrees, unwrapped")
    yaw_shoulders: list[float | None]
    yaw_hips: list[float | None]
    spins: list[Spin]


class Analysis(_Closed):
    """pose-service/analysis@1 (DESIGN.md section 8; conventions: docs/analysis.md)."""

    schema_: Literal["pose-service/analysis@1"] = Field(alias="schema")
    provenance: Provenance
    angle_names: list[str]
    tracks: list[AnalysisTrack]
