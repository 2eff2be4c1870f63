"""/openapi.json describes every route, result documents included, and schemathesis finds no server
error against it."""

from __future__ import annotations

import copy
import json
import re
from typing import Any

import jsonschema_rs
import numpy as np
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from pydantic import ValidationError
from schemathesis import GenerationMode
from schemathesis.specs.openapi.checks import positive_data_acceptance
from starlette.routing import Route

from tests.web.conftest import result_document, run_job, video_job
from web.app import ENDPOINTS
from web.result_document import Result
from worker.pipeline.io.result_document import FrameResult, build_document
from worker.pipeline.tracking.tracker import Person

EXAMPLES = 25
TOKEN = "schemathesis-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def test_every_route_is_described(client) -> None:
    spec = client.get("/openapi.json").json()
    assert spec["openapi"].startswith("3.1")
    routes = [r for r in client.app.routes if isinstance(r, Route)]
    assert len(routes) == len(ENDPOINTS)
    for route in routes:
        path = re.sub(r"\{(\w+)(:\w+)?\}", r"{\1}", route.path)
        for method in route.methods - {"HEAD"}:
            operation = spec["paths"].get(path, {}).get(method.lower())
            assert operation is not None, f"{method} {path} is not in /openapi.json"
            assert operation["responses"], f"{method} {path} has no responses"
            protected = getattr(route.endpoint, "protected", False)
            assert bool(operation["security"]) == protected, f"{method} {path}: security does not match the table"
            if protected:
                assert {"401", "403"} <= set(operation["responses"])
            if method in ("POST", "PUT", "PATCH") and not path.endswith(("/cancel", "/retry")):
                assert "requestBody" in operation, f"{method} {path} has no request body schema"
            for status, response in operation["responses"].items():
                schema = response["content"].get("application/json", {}).get("schema")
                if schema is not None and path != "/openapi.json":  # every JSON answer is a named model
                    assert "$ref" in schema, f"{method} {path} {status} has no model"


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE], ids=["positive", "negative"])
def test_schemathesis_finds_no_server_error(make_client, media_root, mode: GenerationMode) -> None:
    """Every operation, with generated valid (positive) and invalid (negative) requests, through all of
    schemathesis' checks (no 5xx, status codes and bodies as documented, invalid data rejected) except
    "valid data accepted": a schema-valid path may still name a missing file (422), an upload may not
    be a video (415), and so on. Job 1 has succeeded, so its result is checked against the Result
    schema too (explicitly below, and whenever a generated case names it).
    Driven by hand with hypothesis, since schemathesis' pytest plugin does not run on pytest 9."""
    client = make_client(api_tokens=(TOKEN,), app_options={"hybrid_timeout_s": 0.2})
    app = client.app
    store = app.state.ctx.store
    client.post("/v1/jobs", json={"video_path": str(media_root / "video.mp4")}, headers=AUTH)
    run_job(store)  # job 1 succeeded: a result document to check against the Result schema
    store.register_worker("st-worker", host="h", pid=1, gpu=None, mode="warm")  # so /readyz may be 200
    api = schemathesis.openapi.from_asgi("/openapi.json", app)
    failures: list[str] = []
    operations = set()
    for result in api.get_all_operations():
        operation = result.ok()
        operations.add((operation.method.upper(), operation.path))
        store.worker_heartbeat("st-worker", None)

        @given(case=operation.as_strategy(generation_mode=mode))
        @settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), database=None)
        def check(case) -> None:
            case.call_and_validate(headers=AUTH, excluded_checks=[positive_data_acceptance])

        try:
            check()
        except Unsatisfiable:  # nothing to make invalid (no parameters, no body) in negative mode
            pass
        except Exception as exc:  # collect every operation's failure, not just the first
            failures.append(f"{operation.method.upper()} {operation.path}: {exc}")
    result = api["/v1/jobs/{job_id}/result"]["GET"].Case(path_parameters={"job_id": 1})
    assert result.call_and_validate(headers=AUTH).status_code == 200
    assert not failures, "\n\n".join(failures)
    # schemathesis leaves out the schema's own route
    assert operations == {(e.method, e.path) for e in ENDPOINTS} - {("GET", "/openapi.json")}


# ---- the result document ----------------------------------------------------------------------------
def pipeline_document(*, fps: float | None = 25.0) -> dict[str, Any]:
    """A document as the real pipeline writes it (its build_document), as JSON would carry it."""
    rng = np.random.default_rng(1)
    person = Person(
        track_id=3,
        bbox=np.array([1.0, 2.0, 30.0, 40.0]),
        score=0.87,
        keypoints=rng.random((33, 5)),
        world=rng.random((33, 3)),
    )
    frames = [FrameResult(0, 0.0, [person]), FrameResult(1, 0.04, []), FrameResult(2, 0.08, [person, person])]
    document = build_document(
        width=64, height=48, fps=fps, rotation=90, frames=frames, skipped_frames=1, device="cpu",
        weights_sha256="ab" * 32, decode_s=0.1, inference_s=0.2, total_s=0.3,
        tracks=[{"track_id": 3, "first_frame": 0, "last_frame": 2, "frames_seen": 2, "frames_predicted": 1,
                 "mean_height_px": 38.0, "mean_score": 0.87, "activity": 0.01, "centre_offset": 0.2,
                 "subject": False}],
    )  # fmt: skip
    return json.loads(json.dumps(document))  # type: ignore[no-any-return]


def published_result_schema(client) -> jsonschema_rs.Draft202012Validator:
    """The Result schema as /openapi.json publishes it (what schemathesis and clients check against;
    jsonschema_rs is the validator schemathesis itself uses)."""
    components = client.get("/openapi.json").json()["components"]
    schema = {"$ref": "#/components/schemas/Result", "components": components}
    return jsonschema_rs.Draft202012Validator(schema)


@pytest.mark.parametrize("fps", [25.0, None], ids=["fps", "no-fps"])
def test_what_the_pipeline_writes_is_a_valid_result(client, fps: float | None) -> None:
    document = pipeline_document(fps=fps)
    Result.model_validate(document)
    published_result_schema(client).validate(document)


def test_the_web_tests_documents_are_valid_results(client) -> None:
    """tests/web/conftest.py's and tests/web/pipelines.py's fake documents are result@1 too, so the
    schemathesis runs check real-shaped answers."""
    from tests.web.conftest import VIDEO
    from tests.web.pipelines import run as hybrid_pipeline

    validator = published_result_schema(client)
    for document in (
        result_document(),
        result_document(people=2, frames=3),
        hybrid_pipeline(str(VIDEO), {"mode": "static"}, lambda done, total: None),
    ):
        Result.model_validate(document)
        validator.validate(document)


def test_the_result_schema_refuses_drift(client) -> None:
    """Closed objects: a field the pipeline adds without the model is caught; persons alone may carry
    a backend's extra fields (DESIGN.md section 5)."""
    validator = published_result_schema(client)
    good = pipeline_document()
    extra_person = copy.deepcopy(good)
    extra_person["frames"][0]["people"][0]["smpl"] = {"betas": [0.0] * 10}
    Result.model_validate(extra_person)
    validator.validate(extra_person)
    broken = []
    for change in (
        lambda d: d.update(extra=1),
        lambda d: d["video"].update(codec="h264"),
        lambda d: d["video"].pop("skipped_frames"),
        lambda d: d.update(schema="pose-service/result@2"),
        lambda d: d["frames"][0]["people"][0]["keypoints"].pop(),
        lambda d: d["frames"][0]["people"][0]["keypoints"][0].pop(),
        lambda d: d["frames"][0]["people"][0]["world"][0].append(1.0),
        lambda d: d["frames"][0]["people"][0].pop("bbox"),
        lambda d: d["timings"].pop("total_s"),
    ):
        document = copy.deepcopy(good)
        change(document)
        broken.append(document)
    for document in broken:
        with pytest.raises(ValidationError):
            Result.model_validate(document)
        assert not validator.is_valid(document)


def test_a_served_result_matches_the_schema(client, web_store, media_root) -> None:
    job = video_job(client, media_root)
    run_job(web_store, document=pipeline_document())
    r = client.get(f"/v1/jobs/{job['id']}/result")
    assert r.status_code == 200
    published_result_schema(client).validate(r.json())
