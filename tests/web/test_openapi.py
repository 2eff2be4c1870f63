"""/openapi.json describes every route, and schemathesis finds no server error against it."""

from __future__ import annotations

import re

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.specs.openapi.checks import positive_data_acceptance
from starlette.routing import Route

from web.app import ENDPOINTS

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


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE], ids=["positive", "negative"])
def test_schemathesis_finds_no_server_error(make_client, mode: GenerationMode) -> None:
    """Every operation, with generated valid (positive) and invalid (negative) requests, through all of
    schemathesis' checks (no 5xx, status codes and bodies as documented, invalid data rejected) except
    "valid data accepted": a schema-valid path may still name a missing file (422), an upload may not
    be a video (415), and so on.
    Driven by hand with hypothesis, since schemathesis' pytest plugin does not run on pytest 9."""
    app = make_client(api_tokens=(TOKEN,), app_options={"hybrid_timeout_s": 0.2}).app
    store = app.state.ctx.store
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
    assert not failures, "\n\n".join(failures)
    # schemathesis leaves out the schema's own route
    assert operations == {(e.method, e.path) for e in ENDPOINTS} - {("GET", "/openapi.json")}
