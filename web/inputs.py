"""What clients send: the request bodies and query strings of every route, as pydantic models.

These models are the single statement of each limit: the routes validate with them
(web.validation.validated) and /openapi.json publishes their JSON Schema (web/openapi.py), so a bound
cannot be checked one way and documented another. The multipart upload is read by the hand-written
streaming handler (web/uploads.py); its text fields are the same SubmitOptions.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

from jobs.result_stream import FrameWindow, ResultFormat
from jobs.states import JobState
from web.error_codes import ErrorCode
from web.validation import JSON_INT, JSON_NUMBER, PG_TEXT, QUERY_INT, PgJsonObject, QueryTime, invalid

MAX_PRIORITY = 1_000_000
MAX_ATTEMPTS = 100
MAX_TIMEOUT_S = 7 * 24 * 3600.0
MAX_KEY_LEN = 200
MAX_PATH_LEN = 4096
LIST_DEFAULT, LIST_MAX = 50, 500
STATS_DEFAULT_DAYS, STATS_MAX_DAYS = 7, 366
HYBRID_BODY_LIMIT = 32 << 20  # base64 of a large still image
MAX_JOB_ID = 2**63 - 1  # PostgreSQL bigint


class _Input(BaseModel):
    """A request part: unknown names are refused (a typo should not be silently ignored)."""

    model_config = ConfigDict(extra="forbid")


VideoPath = Annotated[
    str, Field(min_length=1, max_length=MAX_PATH_LEN, description="absolute path under POSE_MEDIA_ROOTS"), PG_TEXT
]


class SubmitOptions(_Input):
    """The optional fields of a submission, as JSON or as multipart text fields; null means "not
    given" (the server's default)."""

    priority: Annotated[int, Field(ge=-MAX_PRIORITY, le=MAX_PRIORITY), JSON_INT] | None = Field(
        default=None, description="higher runs first; at most the token's ceiling (default 0)"
    )
    params: PgJsonObject | None = Field(
        default=None, description='parameters of the configured pipeline, e.g. {"mode": "static"}; checked at submit'
    )
    idempotency_key: Annotated[str, Field(min_length=1, max_length=MAX_KEY_LEN), PG_TEXT] | None = Field(
        default=None, description="a repeated key returns the job the first request created (200)"
    )
    max_attempts: Annotated[int, Field(ge=1, le=MAX_ATTEMPTS), JSON_INT] | None = Field(
        default=None, description="attempts before the job fails for good (default: the server's)"
    )
    timeout_s: Annotated[float, Field(gt=0, le=MAX_TIMEOUT_S, allow_inf_nan=False), JSON_NUMBER] | None = Field(
        default=None, description="seconds one attempt may run (default: the server's)"
    )


class SubmitJson(SubmitOptions):
    """POST /v1/jobs with a JSON body: a video the server can read."""

    video_path: VideoPath


def _upload_form_schema(schema: dict[str, Any]) -> None:
    """In multipart every field is text, present or absent (never null): params is a JSON object
    written as text; the video is the file."""
    properties = schema["properties"]
    assert isinstance(properties, dict)
    for prop in properties.values():
        assert isinstance(prop, dict)
        options = prop.pop("anyOf", None)
        if isinstance(options, list):
            prop.update(next(o for o in options if o != {"type": "null"}))
        prop.pop("default", None)
    properties["params"] = {"type": "string", "description": "a JSON object, as text"}
    properties["video"] = {
        "type": "string",
        "format": "binary",
        "description": "the video file: MP4/MOV, Matroska/WebM, AVI, MPEG-TS or MPEG-PS",
    }
    schema["required"] = ["video"]


class SubmitUpload(SubmitOptions):
    """POST /v1/jobs as multipart/form-data: the ``video`` part and SubmitOptions as text fields. Only
    the document uses this model; web/uploads.py streams the body and SubmitOptions checks the fields."""

    model_config = ConfigDict(extra="forbid", json_schema_extra=_upload_form_schema)


class JobPath(BaseModel):
    """The {job_id} of a path. Only the document uses this model: web/submission.py's job_id_of
    answers 404 (not 422) for anything that cannot be a job id, within the same bound."""

    job_id: Annotated[int, Field(ge=1, le=MAX_JOB_ID)]


def _state(value: Any) -> Any:
    if value not in {s.value for s in JobState}:
        states = ", ".join(s.value for s in JobState)
        raise invalid(f"must be one of {states}", ErrorCode.INVALID_PARAMETER)
    return value


class ListJobsQuery(_Input):
    """GET /v1/jobs: filters and a page."""

    state: Annotated[JobState, BeforeValidator(_state)] | None = None
    since: QueryTime | None = Field(default=None, description="created at or after (ISO 8601)")
    cursor: Annotated[str, Field(min_length=1), PG_TEXT] | None = Field(
        default=None, description="the last page's next_cursor"
    )
    limit: Annotated[int, Field(ge=1, le=LIST_MAX), QUERY_INT] = LIST_DEFAULT
    parent_id: Annotated[int, Field(ge=1, le=MAX_JOB_ID), QUERY_INT] | None = Field(
        default=None, description="the segments of this split job (without it: jobs clients submitted, no segments)"
    )


class StatsQuery(_Input):
    """GET /v1/stats: how many days back."""

    days: Annotated[int, Field(ge=1, le=STATS_MAX_DAYS), QUERY_INT] = STATS_DEFAULT_DAYS


def frame_window(value: Any) -> Any:
    """``?frames=A:B`` checked with FrameWindow.parse (422 invalid_parameter), kept as the text."""
    try:
        FrameWindow.parse(value)
    except ValueError as exc:
        raise invalid(str(exc), ErrorCode.INVALID_PARAMETER) from None
    return value


class ResultQuery(_Input):
    """GET /v1/jobs/{id}/result: which frames, in which format."""

    frames: Annotated[str, BeforeValidator(frame_window)] | None = Field(
        default=None, description="frames A:B (index A up to, not including, B; A: or :B leave a side open)",
        pattern=r"^[0-9]*(:[0-9]*)?$", max_length=24,
    )
    format: ResultFormat = Field(
        default=ResultFormat.JSON,
        description="json: the result document; ndjson: one frame per line; csv: one row per frame, person "
                    "and keypoint, with a header",
    )

    @property
    def window(self) -> FrameWindow:
        return FrameWindow.parse(self.frames)


class LegacyVideoRequest(_Input):
    """POST /pose/video (the old service): a video the server can read."""

    video_path: VideoPath


class HybridRequest(_Input):
    """POST /pose/hybrid (the old service): one still image. The image is searched whole and in tiles of
    finer scales (small and distant people); ``max_people`` and ``detect_scales`` become the job's
    params, checked at submit against the configured pipeline's own bounds (422 invalid_params)."""

    image_base64: Annotated[str, Field(min_length=1, max_length=HYBRID_BODY_LIMIT), PG_TEXT] = Field(
        description="PNG/JPEG/WebP, base64 (a data: URL is fine)"
    )
    max_people: Annotated[int, Field(ge=1), JSON_INT] | None = Field(
        default=None, description="people to find at most (the pose pipeline allows 1..32; default its own, 4)"
    )
    detect_scales: Annotated[int, Field(ge=0), JSON_INT] | None = Field(
        default=None, description="finer scales of tiles searched besides the whole image (default: from its size)"
    )
    backend: Literal["blazepose", "phalp"] | None = Field(
        default=None, description="phalp: 4D-Humans' SMPL parameters and joints per person, and the mesh (vertices, "
                                  "faces) when the worker has POSE_SMPL_MODEL; default: the server's POSE_BACKEND"
    )

    @property
    def params(self) -> dict[str, Any]:
        """The hybrid job's params: a still is one frame on its own (static mode)."""
        given = {"max_people": self.max_people, "detect_scales": self.detect_scales}
        return {"mode": "static", **{k: v for k, v in given.items() if v is not None}}

    def params_for(self, default_backend: str) -> dict[str, Any]:
        """The params for the backend that runs the job: with phalp, the mesh is asked for and the
        BlazePose options stay (the phalp schema refuses them, 422, rather than ignoring them)."""
        if (self.backend or default_backend) != "phalp":
            return self.params
        given = {"max_people": self.max_people, "detect_scales": self.detect_scales}
        return {"backend": "phalp", "mesh": True, **{k: v for k, v in given.items() if v is not None}}
