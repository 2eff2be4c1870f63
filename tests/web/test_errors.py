"""Every failure is a JSON error object with the right status, and nothing internal leaks."""

from __future__ import annotations

import logging

from starlette.routing import Route

from jobs.store import JobStore


def test_unknown_route_and_wrong_method(client) -> None:
    r = client.get("/v2/nothing")
    assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"
    r = client.delete("/v1/jobs/1")
    assert r.status_code == 405 and r.json()["error"]["code"] == "method_not_allowed"


def test_unexpected_exception_is_a_bare_500_logged_with_the_request_id(client, caplog) -> None:
    async def broken(request):
        raise RuntimeError("secret internals: password=hunter2")

    client.app.router.routes.append(Route("/boom", broken))
    with caplog.at_level(logging.ERROR, logger="web"):
        r = client.get("/boom", headers={"x-request-id": "req-42"})
    assert r.status_code == 500
    body = r.json()
    assert body["error"]["code"] == "internal_error" and "req-42" in body["error"]["message"]
    assert "hunter2" not in r.text and "Traceback" not in r.text
    assert r.headers["x-request-id"] == "req-42"
    assert any("hunter2" in (rec.exc_text or "") or rec.exc_info for rec in caplog.records)


def test_every_response_carries_a_request_id(client) -> None:
    r = client.get("/healthz")
    assert len(r.headers["x-request-id"]) == 16


def test_database_down_is_503_not_500(make_client) -> None:
    dead = JobStore.connect("postgresql://postgres@127.0.0.1:1/nowhere", pool_size=1)
    client = make_client(store=dead)
    for method, path in (("GET", "/v1/jobs/1"), ("GET", "/v1/jobs"), ("POST", "/v1/jobs/1/cancel")):
        r = client.request(method, path)
        assert r.status_code == 503, (path, r.text)
        assert r.json()["error"]["code"] == "database_unavailable"
    dead.close()
