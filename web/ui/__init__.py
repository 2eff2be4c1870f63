"""The dashboard, the submit page, the job viewer and the comparison (DESIGN.md section 4): HTML pages
served by the same Starlette app as the REST API, with small hand-written JS and CSS (web/ui/static/),
nothing from a CDN and no front-end build step.

The pages are shells: the server renders only what is the same for every caller (the layout, the job
id from the URL, whether the API needs a token, the pipeline's parameter choices). Every job, worker
and statistic is fetched by the page's own JS from the REST API with the bearer token the user typed
(kept in the tab's sessionStorage), so a token sees in the browser exactly what its scopes let it see
over REST, and there is no second authorization path to keep in step with the first.

Jinja2 renders them: one base layout the pages extend, and autoescaping of every value put into a
page (query parameters such as ``?a=`` and ``?b=`` reach the HTML).
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.datastructures import URLPath
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import BaseRoute, Match, Mount, NoMatchFound, Route
from starlette.staticfiles import StaticFiles
from starlette.types import Receive, Scope, Send

from web.context import ctx
from web.error_codes import ErrorCode
from web.errors import ApiError
from web.submission import job_id_of
from worker.pipeline.params import schema_for

HERE = Path(__file__).parent
STATIC = HERE / "static"
#: Parameters the submit page offers when the configured pipeline declares them.
SUBMIT_PARAMS = ("subject", "max_people", "mode")
_ENV = Environment(loader=FileSystemLoader(HERE / "templates"), autoescape=select_autoescape(["html"]),
                   trim_blocks=True, lstrip_blocks=True)
#: No page may be framed by another site, and nothing loads from anywhere but this server.
_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data: blob:; media-src 'self' blob:; "
                               "style-src 'self'; script-src 'self'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-store",
}


def _render(request: Request, template: str, **values: Any) -> Response:
    app = ctx(request)
    html = _ENV.get_template(template).render(api_closed=app.tokens.closed, **values)
    return HTMLResponse(html, headers=_HEADERS)


async def dashboard(request: Request) -> Response:
    return _render(request, "dashboard.html", page="dashboard")


async def submit_page(request: Request) -> Response:
    schema = schema_for(ctx(request).settings.pipeline)
    params = []
    if schema is not None:
        for name in SUBMIT_PARAMS:
            param = schema.params.get(name)
            if param is not None:
                params.append({"name": name, "kind": param.kind.__name__, "default": param.default,
                               "choices": param.choices, "lo": param.lo, "hi": param.hi, "doc": param.doc})
    return _render(request, "submit.html", page="submit", params=params)


async def job_page(request: Request) -> Response:
    return _render(request, "job.html", page="job", job_id=job_id_of(request))


async def compare_page(request: Request) -> Response:
    ids = []
    for key in ("a", "b"):
        raw = request.query_params.get(key, "")
        if not (raw.isascii() and raw.isdigit() and 0 < len(raw) <= 19):
            raise ApiError(422, ErrorCode.INVALID_PARAMETER, f"?{key}= must be a job id")
        ids.append(int(raw))
    return _render(request, "compare.html", page="compare", a=ids[0], b=ids[1])


class Pages(BaseRoute):
    """The pages as one route of the app: they are HTML, not part of the REST API that /openapi.json
    describes (its table is web/app.py's ENDPOINTS, and every Route of the app is one of its rows).
    Matches exactly its own paths, so the API's JSON 404 and 405 answers stay as they are."""

    def __init__(self, routes: list[Route]) -> None:
        self.routes = routes

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        for route in self.routes:
            match, child = route.matches(scope)
            if match is not Match.NONE:
                return match, {**child, "ui.route": route}
        return Match.NONE, {}

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        await scope["ui.route"].handle(scope, receive, send)

    def url_path_for(self, name: str, /, **path_params: Any) -> URLPath:
        for route in self.routes:
            with contextlib.suppress(NoMatchFound):
                return route.url_path_for(name, **path_params)
        raise NoMatchFound(name, path_params)


def routes() -> list[BaseRoute]:
    """The pages and their static files (/static/ui/...)."""
    pages = Pages([
        Route("/", dashboard, methods=["GET"]),
        Route("/submit", submit_page, methods=["GET"]),
        Route("/jobs/{job_id}", job_page, methods=["GET"]),
        Route("/compare", compare_page, methods=["GET"]),
    ])
    return [pages, Mount("/static/ui", app=StaticFiles(directory=STATIC), name="ui-static")]
