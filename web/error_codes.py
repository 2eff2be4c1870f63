"""Every ``error.code`` the API answers with, in one place.

Clients branch on these strings (``{"error": {"code", "message"}}``), so they are part of the
contract: a StrEnum makes a typo a type error instead of a silently new code, and the OpenAPI
document lists them (``Error.error.code``). Router failures (404 unknown route, 405 wrong method)
are named after their HTTP status by web/errors.py and are listed here too.
"""

from __future__ import annotations

from enum import StrEnum


class ErrorCode(StrEnum):
    # the request as a whole
    BAD_REQUEST = "bad_request"
    MALFORMED_JSON = "malformed_json"
    MALFORMED_MULTIPART = "malformed_multipart"
    UNSUPPORTED_MEDIA_TYPE = "unsupported_media_type"
    BODY_TOO_LARGE = "body_too_large"
    REQUEST_TIMEOUT = "request_timeout"
    NOT_FOUND = "not_found"
    METHOD_NOT_ALLOWED = "method_not_allowed"
    # fields, parameters and params
    INVALID_BODY = "invalid_body"
    UNKNOWN_FIELD = "unknown_field"
    MISSING_FIELD = "missing_field"
    INVALID_FIELD = "invalid_field"
    FIELD_TOO_LARGE = "field_too_large"
    UNKNOWN_PARAMETER = "unknown_parameter"
    INVALID_PARAMETER = "invalid_parameter"
    INVALID_CURSOR = "invalid_cursor"
    INVALID_PARAMS = "invalid_params"
    PRIORITY_TOO_HIGH = "priority_too_high"
    # videos, images and uploads
    PATH_FORBIDDEN = "path_forbidden"
    VIDEO_NOT_FOUND = "video_not_found"
    VIDEO_NOT_READABLE = "video_not_readable"
    NOT_A_VIDEO = "not_a_video"
    NOT_AN_IMAGE = "not_an_image"
    TOO_FEW_PIXELS = "too_few_pixels"
    TOO_MANY_PIXELS = "too_many_pixels"
    UPLOAD_TOO_LARGE = "upload_too_large"
    INSUFFICIENT_STORAGE = "insufficient_storage"
    # authentication and rates
    UNAUTHORIZED = "unauthorized"
    TOKEN_REVOKED = "token_revoked"
    INSUFFICIENT_SCOPE = "insufficient_scope"
    RATE_LIMITED = "rate_limited"
    # jobs
    JOB_NOT_FOUND = "job_not_found"
    IDEMPOTENCY_CONFLICT = "idempotency_conflict"
    RESULT_NOT_READY = "result_not_ready"
    JOB_FINISHED = "job_finished"
    NOT_RETRYABLE = "not_retryable"
    RETRY_LIMIT = "retry_limit"
    UPLOAD_EXPIRED = "upload_expired"
    FRAMES_EXPIRED = "frames_expired"
    RANGE_NOT_SATISFIABLE = "range_not_satisfiable"
    # sport analysis (web/routes_analysis.py)
    ANALYSIS_NOT_FOUND = "analysis_not_found"
    ANALYSIS_PENDING = "analysis_pending"
    ANALYSIS_EXPIRED = "analysis_expired"
    NOT_A_POSE_JOB = "not_a_pose_job"
    INVALID_KEYPOINTS = "invalid_keypoints"
    KEYPOINTS_NOT_STORED = "keypoints_not_stored"
    TRACK_NOT_FOUND = "track_not_found"
    TRACK_REQUIRED = "track_required"
    # /pose/hybrid
    TIMEOUT = "timeout"
    CANCELLED = "cancelled"
    JOB_FAILED = "job_failed"
    # the server
    NOT_READY = "not_ready"
    DATABASE_UNAVAILABLE = "database_unavailable"
    INTERNAL_ERROR = "internal_error"
