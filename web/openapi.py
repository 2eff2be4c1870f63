"""GET /openapi.json: the API described by hand, next to the routing table it describes.

OPERATIONS holds one hand-written operation per (method, path) of web.app.ENDPOINTS; build_spec adds
what the table already knows (the bearer-token requirement and its 401/403 answers), so the two
cannot disagree. tests/web/test_openapi.py fails when a route has no description here.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterable
from typing import Any, Protocol

from starlette.requests import Request
from starlette.responses import Response

NULLABLE_STRING: dict[str, Any] = {"type": ["string", "null"]}
NULLABLE_INT: dict[str, Any] = {"type": ["integer", "null"]}
NULLABLE_NUMBER: dict[str, Any] = {"type": ["number", "null"]}
TIME: dict[str, Any] = {"type": "string", "format": "date-time"}
NULLABLE_TIME: dict[str, Any] = {"type": ["string", "null"], "format": "date-time"}


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _error(description: str) -> dict[str, Any]:
    return _json(_ref("Error"), description)


JOB_STATES = ["queued", "running", "succeeded", "failed", "cancelled"]

SCHEMAS: dict[str, Any] = {
    "Error": {
        "type": "object",
        "required": ["error"],
        "properties": {
            "error": {
                "type": "object",
                "required": ["code", "message"],
                "properties": {"code": {"type": "string"}, "message": {"type": "string"}},
            }
        },
    },
    "Job": {
        "type": "object",
        "required": [
            "id",
            "state",
            "priority",
            "params",
            "video",
            "progress",
            "attempts",
            "timings",
            "error",
        ],
        "properties": {
            "id": {"type": "integer"},
            "state": {"type": "string", "enum": JOB_STATES},
            "priority": {"type": "integer"},
            "params": {"type": "object"},
            "video": {
                "type": "object",
                "required": ["source"],
                "properties": {
                    "source": {"type": "string", "enum": ["path", "upload"]},
                    "path": NULLABLE_STRING,
                    "upload_id": {"type": "integer"},
                },
            },
            "progress": {
                "type": "object",
                "required": ["frames_done", "frames_total", "percent"],
                "properties": {
                    "frames_done": {"type": "integer"},
                    "frames_total": NULLABLE_INT,
                    "percent": NULLABLE_NUMBER,
                },
            },
            "attempts": {
                "type": "object",
                "required": ["attempt", "max_attempts"],
                "properties": {
                    "attempt": {"type": "integer"},
                    "max_attempts": {"type": "integer"},
                    "retries": {"type": "integer", "description": "times the API re-queued it (capped)"},
                },
            },
            "timings": {
                "type": "object",
                "required": ["created_at", "started_at", "finished_at", "wait_s", "run_s"],
                "properties": {
                    "created_at": TIME,
                    "run_after": TIME,
                    "started_at": NULLABLE_TIME,
                    "finished_at": NULLABLE_TIME,
                    "wait_s": NULLABLE_NUMBER,
                    "run_s": NULLABLE_NUMBER,
                },
            },
            "error": {
                "type": ["object", "null"],
                "properties": {"kind": NULLABLE_STRING, "message": NULLABLE_STRING},
            },
            "worker_id": NULLABLE_STRING,
            "cancel_requested": {"type": "boolean"},
            "timeout_s": NULLABLE_NUMBER,
            "idempotency_key": NULLABLE_STRING,
            "owner_token_id": {
                **NULLABLE_INT,
                "description": "the API token that submitted it; null: SQL, env token, open API",
            },
            "links": {"type": "object", "additionalProperties": {"type": "string"}},
        },
    },
    "JobList": {
        "type": "object",
        "required": ["jobs", "next_cursor"],
        "properties": {"jobs": {"type": "array", "items": _ref("Job")}, "next_cursor": NULLABLE_STRING},
    },
    "SubmitJson": {
        "type": "object",
        "additionalProperties": False,
        "required": ["video_path"],
        "properties": {
            "video_path": {
                "type": "string",
                "minLength": 1,
                "maxLength": 4096,
                "description": "absolute path under POSE_MEDIA_ROOTS",
            },
            "priority": {"type": "integer", "minimum": -1000000, "maximum": 1000000, "default": 0},
            "params": {
                "type": "object",
                "description": 'parameters of the configured pipeline, e.g. {"mode": "static"}; checked at submit',
            },
            "idempotency_key": {"type": "string", "minLength": 1, "maxLength": 200},
            "max_attempts": {"type": "integer", "minimum": 1, "maximum": 100},
            "timeout_s": {"type": "number", "exclusiveMinimum": 0, "maximum": 604800},
        },
    },
    "SubmitUpload": {
        "type": "object",
        "additionalProperties": False,
        "required": ["video"],
        "properties": {
            "video": {
                "type": "string",
                "format": "binary",
                "description": "the video file: MP4/MOV, Matroska/WebM, AVI, MPEG-TS or MPEG-PS",
            },
            "priority": {"type": "integer", "minimum": -1000000, "maximum": 1000000},
            "params": {"type": "string", "description": "a JSON object, as text"},
            "idempotency_key": {"type": "string", "minLength": 1, "maxLength": 200},
            "max_attempts": {"type": "integer", "minimum": 1, "maximum": 100},
            "timeout_s": {"type": "number", "exclusiveMinimum": 0, "maximum": 604800},
        },
    },
    "Event": {
        "type": "object",
        "required": ["id", "at", "to_state", "attempt"],
        "properties": {
            "id": {"type": "integer"},
            "at": TIME,
            "from_state": NULLABLE_STRING,
            "to_state": {"type": "string", "enum": JOB_STATES},
            "attempt": {"type": "integer"},
            "worker_id": NULLABLE_STRING,
            "error_kind": NULLABLE_STRING,
            "error_message": NULLABLE_STRING,
        },
    },
    "Result": {
        "type": "object",
        "description": "The result document, schema pose-service/result@1 (DESIGN.md section 5).",
        "properties": {
            "schema": {"type": "string"},
            "video": {"type": "object"},
            "model": {"type": "object"},
            "keypoint_names": {"type": "array", "items": {"type": "string"}},
            "skeleton": {"type": "array"},
            "frames": {"type": "array"},
            "timings": {"type": "object"},
        },
    },
    "Stats": {
        "type": "object",
        "required": ["days", "daily", "failures", "failures_by_kind", "totals"],
        "properties": {
            "days": {"type": "integer"},
            "daily": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["day", "submitted", "succeeded", "failed", "cancelled"],
                    "properties": {
                        "day": {"type": "string", "format": "date"},
                        "submitted": {"type": "integer"},
                        "succeeded": {"type": "integer"},
                        "failed": {"type": "integer"},
                        "cancelled": {"type": "integer"},
                        "pending": {"type": "integer"},
                        "wait_p50_s": NULLABLE_NUMBER,
                        "wait_p95_s": NULLABLE_NUMBER,
                        "run_p50_s": NULLABLE_NUMBER,
                        "run_p95_s": NULLABLE_NUMBER,
                        "frames_processed": {"type": "integer"},
                        "run_seconds": NULLABLE_NUMBER,
                        "frames_per_s": NULLABLE_NUMBER,
                    },
                },
            },
            "failures": {"type": "array", "items": {"type": "object"}},
            "failures_by_kind": {"type": "object", "additionalProperties": {"type": "integer"}},
            "totals": {"type": "object"},
        },
    },
    "Pool": {
        "type": "object",
        "required": ["workers", "live_workers", "busy_workers", "queue", "estimated_wait_s"],
        "properties": {
            "workers": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["id", "host", "pid", "gpu", "mode", "current_job"],
                    "properties": {
                        "id": {"type": "string"},
                        "host": {"type": "string"},
                        "pid": {"type": "integer"},
                        "gpu": NULLABLE_STRING,
                        "mode": {"type": "string"},
                        "problem": {"type": ["string", "null"],
                                    "description": "why it cannot run jobs (e.g. missing model weights)"},
                        "started_at": TIME,
                        "heartbeat_at": TIME,
                        "current_job": {"type": ["object", "null"]},
                    },
                },
            },
            "live_workers": {"type": "integer"},
            "busy_workers": {"type": "integer"},
            "queue": {
                "type": "object",
                "required": ["ready", "queued"],
                "properties": {"ready": {"type": "integer"}, "queued": {"type": "integer"}},
            },
            "mean_run_s": NULLABLE_NUMBER,
            "estimated_wait_s": {
                "type": ["number", "null"],
                "description": "ready jobs × mean recent run time / live workers",
            },
        },
    },
    "Readiness": {
        "type": "object",
        "required": ["ready", "reasons", "checks"],
        "properties": {
            "ready": {"type": "boolean"},
            "reasons": {"type": "array", "items": {"type": "string"}},
            "checks": {"type": "object"},
            "status": {"type": "string"},
            "error": {"type": "object"},
        },
    },
    "Status": {"type": "object", "required": ["status"], "properties": {"status": {"type": "string"}}},
}

JOB_ID = {
    "name": "job_id",
    "in": "path",
    "required": True,
    "schema": {"type": "integer", "minimum": 1, "maximum": 9223372036854775807},
}

UNAVAILABLE = _error("the database is not reachable")


def _job_answer(description: str) -> dict[str, Any]:
    return _json(_ref("Job"), description)


OPERATIONS: dict[tuple[str, str], dict[str, Any]] = {
    ("POST", "/v1/jobs"): {
        "summary": "Submit a job: a server-side video path (JSON) or an uploaded video (multipart)",
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {"schema": _ref("SubmitJson")},
                "multipart/form-data": {"schema": _ref("SubmitUpload")},
            },
        },
        "responses": {
            "201": {
                **_job_answer("created"),
                "headers": {"Location": {"schema": {"type": "string"}, "description": "the job's URL"}},
            },
            "200": _job_answer("the job an earlier request with the same idempotency key created"),
            "400": _error("malformed JSON or multipart body"),
            "403": _error("video_path outside POSE_MEDIA_ROOTS, relative, or with '..'"),
            "408": _error("the client stalled while sending the body (POSE_BODY_IDLE_TIMEOUT_S, POSE_BODY_TIMEOUT_S)"),
            "409": _error("the idempotency key was used for a different request"),
            "413": _error("the body or upload is too large (POSE_MAX_UPLOAD_MB, framing included)"),
            "415": _error(
                "neither JSON nor multipart, or the video is not a self-contained container with a decodable frame"
            ),
            "422": _error(
                "invalid or unknown fields or params, video_path is not an existing file, frames outside the pixel "
                "limits, or priority above the token's ceiling"
            ),
            "503": UNAVAILABLE,
            "507": _error("no room to spool the upload now"),
        },
    },
    ("GET", "/v1/jobs"): {
        "summary": "List jobs, newest first, with cursor paging",
        "parameters": [
            {"name": "state", "in": "query", "schema": {"type": "string", "enum": JOB_STATES}},
            {"name": "since", "in": "query", "schema": TIME, "description": "created at or after (ISO 8601)"},
            {
                "name": "cursor",
                "in": "query",
                "schema": {"type": "string", "minLength": 1},
                "description": "next_cursor",
            },
            {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 500}},
        ],
        "responses": {
            "200": _json(_ref("JobList"), "a page of jobs"),
            "400": _error("a cursor this server did not issue"),
            "422": _error("an invalid or unknown query parameter"),
            "503": UNAVAILABLE,
        },
    },
    ("GET", "/v1/jobs/{job_id}"): {
        "summary": "A job: state, progress, attempts, timings, error",
        "parameters": [JOB_ID],
        "responses": {"200": _job_answer("the job"), "404": _error("no such job"), "503": UNAVAILABLE},
    },
    ("GET", "/v1/jobs/{job_id}/result"): {
        "summary": "The result document of a succeeded job (gzip if accepted)",
        "parameters": [JOB_ID],
        "responses": {
            "200": _json(_ref("Result"), "the result document"),
            "404": _error("no such job"),
            "409": _error("the job has not succeeded (yet)"),
            "503": UNAVAILABLE,
        },
    },
    ("GET", "/v1/jobs/{job_id}/events"): {
        "summary": "The job's state transitions (pose_job_events)",
        "parameters": [JOB_ID],
        "responses": {
            "200": _json(
                {
                    "type": "object",
                    "required": ["job_id", "events"],
                    "properties": {
                        "job_id": {"type": "integer"},
                        "events": {"type": "array", "items": _ref("Event")},
                    },
                },
                "the events, oldest first",
            ),
            "404": _error("no such job"),
            "503": UNAVAILABLE,
        },
    },
    ("POST", "/v1/jobs/{job_id}/cancel"): {
        "summary": "Cancel: queued jobs at once, running ones are killed by their worker within a second",
        "parameters": [JOB_ID],
        "responses": {
            "200": _job_answer("cancelled (it was queued)"),
            "202": _job_answer("cancel requested (it is running)"),
            "404": _error("no such job"),
            "409": _error("the job has already finished"),
            "503": UNAVAILABLE,
        },
    },
    ("POST", "/v1/jobs/{job_id}/retry"): {
        "summary": "Re-queue a failed or cancelled job with fresh attempts",
        "parameters": [JOB_ID],
        "responses": {
            "200": _job_answer("queued again"),
            "404": _error("no such job"),
            "409": _error("the job is neither failed nor cancelled, was retried too often, or its upload expired"),
            "503": UNAVAILABLE,
        },
    },
    ("GET", "/v1/stats"): {
        "summary": "History per day: counts, p50/p95 wait and run times, frames/s, failures by kind",
        "parameters": [
            {
                "name": "days",
                "in": "query",
                "schema": {"type": "integer", "minimum": 1, "maximum": 366, "default": 7},
            }
        ],
        "responses": {
            "200": _json(_ref("Stats"), "the statistics"),
            "422": _error("an invalid or unknown query parameter"),
            "503": UNAVAILABLE,
        },
    },
    ("GET", "/v1/pool"): {
        "summary": "Live workers and their jobs, the queue, and the estimated wait",
        "responses": {"200": _json(_ref("Pool"), "the pool"), "503": UNAVAILABLE},
    },
    ("GET", "/healthz"): {
        "summary": "Liveness: the process answers (no database access)",
        "responses": {"200": _json(_ref("Status"), "alive")},
    },
    ("GET", "/readyz"): {
        "summary": "Readiness: database reachable, schema current, at least one live worker",
        "responses": {
            "200": _json(_ref("Readiness"), "ready"),
            "503": _json(_ref("Readiness"), "not ready; reasons says why"),
        },
    },
    ("GET", "/metrics"): {
        "summary": "Prometheus metrics, read from the database at scrape time",
        "responses": {
            "200": {
                "description": "Prometheus text format",
                "content": {"text/plain": {"schema": {"type": "string"}}},
            }
        },
    },
    ("GET", "/openapi.json"): {
        "summary": "This document",
        "responses": {"200": _json({"type": "object"}, "the OpenAPI document")},
    },
    ("GET", "/health"): {
        "summary": "Old service: liveness",
        "responses": {"200": _json(_ref("Status"), "alive")},
    },
    ("GET", "/api/pose/health"): {
        "summary": "Old service: readiness (503 while not ready)",
        "responses": {
            "200": _json(_ref("Readiness"), "healthy"),
            "503": _json(_ref("Readiness"), "unhealthy"),
        },
    },
    ("GET", "/api/pose/pool-status"): {
        "summary": "Old service: worker pool and queue",
        "responses": {
            "200": _json(
                {
                    "type": "object",
                    "required": ["status", "workers", "queue_length", "estimated_wait_s"],
                    "properties": {
                        "status": {"type": "string"},
                        "workers": {"type": "object"},
                        "queue_length": {"type": "integer"},
                        "estimated_wait_s": NULLABLE_NUMBER,
                        "pool": _ref("Pool"),
                    },
                },
                "the pool",
            ),
            "503": UNAVAILABLE,
        },
    },
    ("POST", "/pose/video"): {
        "summary": "Old service: submit a server-side video path",
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {
                    "schema": {
                        "type": "object",
                        "additionalProperties": False,
                        "required": ["video_path"],
                        "properties": {"video_path": {"type": "string", "minLength": 1, "maxLength": 4096}},
                    }
                }
            },
        },
        "responses": {
            "200": _json(
                {
                    "type": "object",
                    "required": ["job_id", "status"],
                    "properties": {"job_id": {"type": "integer"}, "status": {"type": "string"}},
                },
                "queued",
            ),
            "400": _error("malformed JSON"),
            "403": _error("video_path outside POSE_MEDIA_ROOTS"),
            "408": _error("the client stalled while sending the body"),
            "413": _error("body too large"),
            "415": _error("not JSON, or the file is not a self-contained video container"),
            "422": _error("invalid fields or no such file"),
            "503": UNAVAILABLE,
        },
    },
    ("GET", "/pose/video/status/{job_id}"): {
        "summary": "Old service: a job's status",
        "parameters": [JOB_ID],
        "responses": {
            "200": _json(
                {
                    "type": "object",
                    "required": ["job_id", "status", "progress"],
                    "properties": {
                        "job_id": {"type": "integer"},
                        "status": {"type": "string", "enum": JOB_STATES},
                        "progress": {"type": "number"},
                        "frames_done": {"type": "integer"},
                        "frames_total": NULLABLE_INT,
                        "error": NULLABLE_STRING,
                        "result_url": NULLABLE_STRING,
                    },
                },
                "the job",
            ),
            "404": _error("no such job"),
            "503": UNAVAILABLE,
        },
    },
    ("POST", "/pose/hybrid"): {
        "summary": "Old service: keypoints of one image, computed by a worker as a high-priority job",
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {
                    "schema": {
                        "type": "object",
                        "additionalProperties": False,
                        "required": ["image_base64"],
                        "properties": {"image_base64": {"type": "string", "description": "PNG/JPEG, base64"}},
                    }
                }
            },
        },
        "responses": {
            "200": _json(
                {
                    "type": "object",
                    "required": ["success", "job_id", "people", "keypoints"],
                    "properties": {
                        "success": {"type": "boolean"},
                        "job_id": {"type": "integer"},
                        "width": {"type": "integer"},
                        "height": {"type": "integer"},
                        "keypoint_names": {"type": "array", "items": {"type": "string"}},
                        "people": {"type": "array", "items": {"type": "object"}},
                        "keypoints": {"type": "array"},
                        "model": {"type": ["object", "null"]},
                    },
                },
                "the people found in the image",
            ),
            "400": _error("malformed JSON"),
            "408": _error("the client stalled while sending the body"),
            "409": _error("the job was cancelled"),
            "413": _error("body too large"),
            "415": _error("not JSON"),
            "422": _error(
                "invalid fields, not a PNG/JPEG/WebP image, outside the pixel limits, or the worker refused the input"
            ),
            "502": _error("the job failed"),
            "503": UNAVAILABLE,
            "504": _error("no worker finished the job in time"),
        },
    },
}


class _Endpoint(Protocol):
    method: str
    path: str
    protected: bool
    submits: bool


def build_spec(endpoints: Iterable[_Endpoint]) -> dict[str, Any]:
    """The OpenAPI 3.1 document for ``endpoints``; KeyError names a route with no description."""
    paths: dict[str, dict[str, Any]] = {}
    for e in endpoints:
        try:
            operation = copy.deepcopy(OPERATIONS[(e.method, e.path)])
        except KeyError:
            raise KeyError(f"web/openapi.py does not describe {e.method} {e.path}") from None
        operation.setdefault("operationId", _operation_id(e.method, e.path))
        if e.protected:
            operation["security"] = [{"bearerAuth": []}]
            operation["responses"].setdefault("401", _error("no token, or an unknown one"))
            operation["responses"].setdefault("403", _error("a revoked token, or one without this route's scope"))
            if e.submits:
                operation["responses"].setdefault(
                    "429", _error("the token's submit rate is used up; see the Retry-After header")
                )
        else:
            operation["security"] = []
        paths.setdefault(e.path, {})[e.method.lower()] = operation
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "pose-service",
            "version": "1",
            "description": "Jobs that turn videos of people into 2D + 3D body poses. See docs/rest_api.md.",
        },
        "paths": paths,
        "components": {
            "schemas": SCHEMAS,
            "securitySchemes": {"bearerAuth": {"type": "http", "scheme": "bearer"}},
        },
    }


def _operation_id(method: str, path: str) -> str:
    words = [w.strip("{}").replace("-", "_").replace(".", "_") for w in path.split("/") if w]
    return "_".join([method.lower(), *words]) or method.lower()


def render(endpoints: Iterable[_Endpoint]) -> bytes:
    """The document as the bytes /openapi.json serves (built once, at app creation)."""
    return json.dumps(build_spec(endpoints), separators=(",", ":")).encode()


async def openapi_json(request: Request) -> Response:
    return Response(request.app.state.openapi_json, media_type="application/json")
