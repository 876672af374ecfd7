"""The FastAPI application: ``create_app(ServiceConfig())``.

One :class:`~provenance.check.Checker` per process, built and warmed up once in the background
at start-up (``/readyz`` says when); every check runs on the bounded :class:`CheckQueue`.

Status codes of ``POST /v1/check``: 200 records (a file that cannot be decoded is an ``error``
record, as in ``check --json``, and the others are still checked); 401 missing or wrong token;
408 the body did not arrive within the time budget; 413 body over the upload limit or too many
files; 415 not an image type; 422 no file or a malformed body or query; 503 not ready yet, or the
queue is full, or the budget ran out while waiting (with Retry-After); 504 the check itself ran
past the time budget.
"""
from __future__ import annotations

import asyncio
import hmac
import logging
import os
import re
import threading
import time
import uuid
from functools import partial
from pathlib import Path
from typing import Any

from fastapi import Depends, FastAPI, Query, Request
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from fastapi_offline import FastAPIOffline
from pydantic import BaseModel

from provenance.check import Checker

from .checking import check_uploads, describe_detectors, package_version
from .config import ServiceConfig
from .uploads import UploadError, accepted_file_type, check_declared_length, media_type, read_multipart, read_raw
from .workqueue import BudgetExceeded, CheckQueue, QueueFull

CONFIG_ENV = "PROVENANCE_SERVE_CONFIG"
REQUEST_ID_HEADER = "X-Request-ID"
STATIC = Path(__file__).with_name("static")
# The browser itself refuses any asset or request that is not from this server.
PAGE_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' blob: data:; connect-src 'self'; "
                               "object-src 'none'; base-uri 'none'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
}
_CLIENT_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")

log = logging.getLogger("provenance.service")

_BINARY = {"schema": {"type": "string", "format": "binary"}}
CHECK_BODY = {
    "requestBody": {
        "required": True,
        "description": "One or more images as multipart files (any field name; `files` in forms), "
                       "or one image as the raw body.",
        "content": {
            "multipart/form-data": {"schema": {
                "type": "object", "required": ["files"],
                "properties": {"files": {"type": "array", "items": {"type": "string", "format": "binary"}}}}},
            "image/*": _BINARY,
            "application/octet-stream": _BINARY,
        },
    }
}


class Problem(BaseModel):
    detail: str
    request_id: str


class CheckResponse(BaseModel):
    request_id: str
    records: list[dict[str, Any]]  # exactly the records `provenance check --json` prints (+ heatmap)


class DetectorsResponse(BaseModel):
    detectors: list[dict[str, Any]]
    limits: dict[str, Any]


class ServiceState:
    """What one process serves with: the config, its Checker (once loaded) and the queue."""

    def __init__(self, config: ServiceConfig, checker: Checker | None = None):
        self.config = config
        self.queue = CheckQueue(config.concurrency, config.queue_size)
        self.checker = checker
        self.detectors: list[dict] = []
        self.load_error: str | None = None
        self.ready = threading.Event()

    def load(self) -> None:
        """Build the Checker and load its models once (runs on a background thread at start-up)."""
        started = time.monotonic()
        try:
            if self.checker is None:
                self.checker = Checker(self.config.check_config())
            self.checker.warm_up()
            self.detectors = describe_detectors(self.checker)
        except Exception as exc:  # noqa: BLE001 - reported by /readyz and in the log, one line
            self.load_error = f"{type(exc).__name__}: {str(exc).strip().splitlines()[0] if str(exc).strip() else ''}"
            log.error("models failed to load: %s", self.load_error)
            return
        self.ready.set()
        log.info("ready: %d detectors loaded in %.1f s (%s)", len(self.detectors), time.monotonic() - started,
                 ", ".join(d["name"] for d in self.detectors))


def create_app(config: ServiceConfig | None = None, checker: Checker | None = None,
               load_in_background: bool = True) -> FastAPI:
    """The service for ``config``; ``checker`` replaces the one built from it (tests)."""
    config = config or ServiceConfig()
    state = ServiceState(config, checker)

    async def lifespan(app: FastAPI):
        loader = threading.Thread(target=state.load, name="provenance-load", daemon=True)
        loader.start()
        if not load_in_background:
            await asyncio.to_thread(loader.join)
        yield
        state.queue.shutdown()

    # FastAPIOffline: /docs with Swagger UI served from its own package, not a CDN
    app = FastAPIOffline(
        title="provenance", version=package_version("provenance"), lifespan=lifespan, redoc_url=None,
        swagger_ui_parameters={"validatorUrl": None},
        description="Is this image synthetic, and why? The same checks and JSON records as "
                    "`provenance check --json`, over HTTP. A web page for people is at `/`.",
    )
    app.state.service = state
    app.add_middleware(RequestIdMiddleware)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    def problem(request: Request, status: int, detail: str, retry_after: int | None = None) -> JSONResponse:
        headers = {"Retry-After": str(retry_after)} if retry_after is not None else None
        return JSONResponse({"detail": detail, "request_id": request_id(request)}, status_code=status, headers=headers)

    def require_token(request: Request) -> None:
        if config.token is None:
            return
        scheme, _, given = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(), config.token.encode()):
            raise _Unauthorized()

    @app.exception_handler(_Unauthorized)
    async def unauthorized(request: Request, exc: _Unauthorized) -> JSONResponse:
        response = problem(request, 401, "missing or wrong bearer token (Authorization: Bearer ...)")
        response.headers["WWW-Authenticate"] = "Bearer"
        return response

    @app.get("/", include_in_schema=False)
    async def page() -> FileResponse:
        return FileResponse(STATIC / "index.html", media_type="text/html", headers=PAGE_HEADERS)

    @app.get("/healthz", tags=["health"], summary="The process is up")
    async def healthz() -> dict:
        return {"status": "ok"}

    @app.get("/readyz", tags=["health"], summary="Models loaded: ready to check",
             responses={503: {"description": "still loading, or loading failed"}})
    async def readyz(request: Request):
        if state.ready.is_set():
            return {"status": "ready", "detectors": [d["name"] for d in state.detectors]}
        if state.load_error:
            return JSONResponse({"status": "failed", "detail": state.load_error}, status_code=503)
        return JSONResponse({"status": "loading"}, status_code=503, headers={"Retry-After": "5"})

    @app.get("/v1/detectors", tags=["check"], response_model=DetectorsResponse,
             dependencies=[Depends(require_token)],
             summary="The detectors this service runs: versions, weights hashes, operating points",
             responses={401: {"model": Problem}, 503: {"model": Problem}})
    async def detectors(request: Request):
        if not state.ready.is_set():
            return problem(request, 503, "models are still loading", retry_after=5)
        return {"detectors": state.detectors, "limits": {
            "max_upload_bytes": config.max_upload_bytes, "max_files": config.max_files,
            "max_pixels": config.max_pixels, "time_budget_s": config.time_budget_s,
            "concurrency": config.concurrency, "queue_size": config.queue_size}}

    @app.post("/v1/check", tags=["check"], openapi_extra=CHECK_BODY, dependencies=[Depends(require_token)],
              summary="Check images: one record per file, as `provenance check --json` prints",
              responses={200: {"model": CheckResponse}, **{code: {"model": Problem} for code in
                                                           (401, 408, 413, 415, 422, 503, 504)}})
    async def check(
        request: Request,
        heatmap: bool = Query(False, description="Add a classifier's per-tile P(synthetic) to each record"),
        name: str | None = Query(None, max_length=200, description="Label for a raw-body upload (never a path)"),
    ):
        started = time.monotonic()
        content_type = request.headers.get("content-type")
        multipart = media_type(content_type) == "multipart/form-data"
        if not multipart and not accepted_file_type(content_type):
            return problem(request, 415, f"{media_type(content_type)} is not accepted: send multipart/form-data "
                                         "files or an image as the body")
        try:
            check_declared_length(request.headers.get("content-length"), config.max_upload_bytes)
        except UploadError as exc:
            return problem(request, exc.status, str(exc))
        if not state.ready.is_set():
            return problem(request, 503, "models are still loading" if not state.load_error
                           else f"models failed to load: {state.load_error}", retry_after=5)
        try:
            async with state.queue.admission():
                deadline = started + config.time_budget_s
                if multipart:
                    reading = read_multipart(request.stream(), content_type or "", config.max_upload_bytes,
                                             config.max_files)
                else:
                    reading = read_raw(request.stream(), content_type or "", name, config.max_upload_bytes)
                try:
                    uploads = await asyncio.wait_for(reading, timeout=config.time_budget_s)
                except TimeoutError:
                    return problem(request, 408, f"the body did not arrive within {config.time_budget_s:g} s")
                records = await state.queue.run(partial(check_uploads, state.checker, uploads, heatmap), deadline)
        except UploadError as exc:
            return problem(request, exc.status, str(exc))
        except QueueFull as exc:
            return problem(request, 503, f"{exc}; retry later", retry_after=state.queue.retry_after())
        except BudgetExceeded as exc:
            detail = f"{exc} ({config.time_budget_s:g} s)"
            if exc.started:
                return problem(request, 504, detail)
            return problem(request, 503, detail, retry_after=state.queue.retry_after())
        request.scope["provenance.files"] = len(records)
        return JSONResponse({"request_id": request_id(request), "records": records})

    return app


def app_from_environment() -> FastAPI:
    """uvicorn's factory for ``--workers N``: each worker process reads the config the parent set."""
    configure_logging()
    return create_app(ServiceConfig.from_json(os.environ[CONFIG_ENV]))


def configure_logging(level: int = logging.INFO) -> None:
    """One line per request on stderr, with the request ID (tokens and bodies are never logged)."""
    if not log.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s[%(process)d]: %(message)s"))
        log.addHandler(handler)
    log.setLevel(level)


class _Unauthorized(Exception):
    pass


class RequestIdMiddleware:
    """Gives every request an ID (the client's ``X-Request-ID`` when it is sane, else a new one),
    returns it in a header and logs one line per request with it."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        given = dict(scope.get("headers") or []).get(REQUEST_ID_HEADER.lower().encode(), b"").decode("latin-1")
        rid = given if _CLIENT_REQUEST_ID.match(given) else uuid.uuid4().hex
        scope["provenance.request_id"] = rid
        started = time.perf_counter()
        status = 500

        async def send_with_id(message):
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message.setdefault("headers", [])
                message["headers"] = list(message["headers"]) + [(REQUEST_ID_HEADER.lower().encode(), rid.encode())]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            files = scope.get("provenance.files")
            log.info("%s %s %s %d%s %.0f ms", rid, scope["method"], scope["path"], status,
                     f" files={files}" if files is not None else "", (time.perf_counter() - started) * 1000)


def request_id(request: Request) -> str:
    return request.scope.get("provenance.request_id", "")
