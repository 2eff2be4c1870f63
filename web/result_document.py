"""The result document, ``pose-service/result@1`` (DESIGN.md section 5), as pydantic models.

GET /v1/jobs/{job_id}/result serves the document exactly as PostgreSQL stored it, without a round
trip through these models; they exist so /openapi.json describes every field of it (the ``Result``
schema) and schemathesis, and the tests, check what the pipeline writes against that description.
worker/pipeline/io/result_document.py builds the document; tests/web/test_openapi.py validates its
output here. This module imports nothing of the project, so the pipeline may take it over.

Objects are closed (additionalProperties false) except each person: section 5 lets backends that
produce more (SMPL parameters, more joints) add fields under each person without a new version.
``tracks`` (a summary per track, so a client can pick an athlete) is optional: documents without it
stay valid, as do those written before it existed.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

SCHEMA = "pose-service/result@1"
KEYPOINTS = 33

#: [x_px, y_px, z, visibility, presence]: pixels of the upright frame; z is depth relative to the hip
#: centre in x's pixel scale (negative is towards the camera); visibility and presence are 0..1.
Keypoint = Annotated[list[float], Field(min_length=5, max_length=5)]
#: [x_m, y_m, z_m]: metres, hip-centred, y down.
WorldPoint = Annotated[list[float], Field(min_length=3, max_length=3)]


class _Closed(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ResultVideo(_Closed):
    width: int = Field(ge=1)
    height: int = Field(ge=1)
    fps: float | None = Field(description="from the container, never assumed; null when it names none")
    frames: int = Field(ge=0, description="decoded frames")
    duration_s: float = Field(ge=0, description="span of the decoded frames plus one frame period")
    rotation: int = Field(description="degrees the frames were turned to stand upright")
    skipped_frames: int = Field(ge=0, description="frames the container announced that could not be decoded")


class ResultModel(_Closed):
    name: str
    backend: str
    device: str
    weights_sha256: str


class Person(BaseModel):
    """One tracked person in one frame; backends may add fields (DESIGN.md section 5)."""

    model_config = ConfigDict(extra="allow")

    track_id: int = Field(description="the same person keeps the same id across frames")
    bbox: Annotated[list[float], Field(min_length=4, max_length=4, description="[x0, y0, x1, y1] in pixels")]
    score: float
    keypoints: Annotated[list[Keypoint], Field(min_length=KEYPOINTS, max_length=KEYPOINTS)]
    world: Annotated[list[WorldPoint], Field(min_length=KEYPOINTS, max_length=KEYPOINTS)]


class ResultFrame(_Closed):
    index: int = Field(ge=0)
    time_s: float
    people: list[Person]


class ResultTimings(_Closed):
    decode_s: float
    inference_s: float
    total_s: float


class ResultTrack(_Closed):
    """One track over the whole video (the pose pipeline's summary, worker/pipeline/tracking/subject.py)."""

    track_id: int
    first_frame: int = Field(ge=0)
    last_frame: int = Field(ge=0)
    frames_seen: int = Field(ge=1, description="frames in which the person was found")
    frames_predicted: int = Field(
        ge=0, description="frames between the first and the last in which the track lived on without its person "
        "being seen (hidden, crossing behind someone), bridged by the tracker's prediction"
    )
    mean_height_px: float = Field(description="mean height of the person's box")
    mean_score: float
    activity: float = Field(ge=0, description="mean movement of the keypoints per frame, relative to the body height")
    centre_offset: float = Field(ge=0, description="mean distance of the box centre from the frame centre, "
                                 "relative to the frame diagonal")
    subject: bool = Field(description="whether params.subject chose this track (its poses are the ones kept)")


class Result(_Closed):
    """The result document (schema pose-service/result@1, DESIGN.md section 5)."""

    schema_: Literal["pose-service/result@1"] = Field(alias="schema")
    video: ResultVideo
    model: ResultModel
    keypoint_names: Annotated[list[str], Field(min_length=KEYPOINTS, max_length=KEYPOINTS)]
    skeleton: list[Annotated[list[int], Field(min_length=2, max_length=2)]] = Field(
        description="bones, as index pairs into keypoint_names"
    )
    frames: list[ResultFrame]
    timings: ResultTimings
    tracks: list[ResultTrack] | None = Field(
        default=None, description="per track, over the whole video (absent for segments and older results)"
    )
