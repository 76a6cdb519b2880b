"""A guarded OpenAI-compatible HTTP server (`/v1/chat/completions`, `/v1/models`) on FastAPI + uvicorn.

    app = build_app(ChatService(gen, "my-model"), max_body=1 << 20, api_key=None)   # an ASGI app
    server = make_server(gen, "my-model", port=0)       # bound to 127.0.0.1, not yet serving
    server.serve()                                      # blocks; Ctrl-C shuts down gracefully
    server.start(); ...; server.stop()                  # or in a background thread (tests)

The protocol (validation, responses, stream chunks) is in `openai_api.py`; this module is the HTTP
side, laid out as vLLM's OpenAI server is: the service on `app.state`, one handler per route, every
error in the OpenAI error shape. Defaults keep it safe on a shared machine: it binds to 127.0.0.1;
a body over `max_body` bytes gets a 413 (at once when its Content-Length says so, else once the
limit is crossed); a client that stalls mid-body for `body_timeout` seconds gets a 408; at most
`max_pending` requests wait for the model (then 503). If `api_key` is set, every request must carry
it as `Authorization: Bearer KEY` (compared in constant time; never logged). Streaming
(`"stream": true`) sends the guarded reply as server-sent events once it is final. The model runs in
a worker thread, one request at a time (`ChatService`), so the event loop keeps answering.
`commands/serve.py` is the command line; this module has no argparse.
"""

from __future__ import annotations

import hmac
import ipaddress
import json
import logging
import socket
import threading
import time

import anyio
import uvicorn
from fastapi import Depends, FastAPI, Request
from fastapi.responses import JSONResponse, StreamingResponse
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect

from .guard import GuardedGenerator
from .openai_api import ApiError, ChatService, stream_chunks

logger = logging.getLogger(__name__)


def error_response(e: ApiError) -> JSONResponse:
    return JSONResponse(e.body(), status_code=e.status)


def build_app(
    service: ChatService,
    max_body: int = 1 << 20,
    api_key: str | None = None,
    max_pending: int = 128,
    body_timeout: float = 30.0,
) -> FastAPI:
    """The ASGI app serving `service`; see the module doc for the limits."""
    for name, value in (("max_body", max_body), ("max_pending", max_pending)):
        if value < 1:
            raise ValueError(f"{name} must be >= 1, got {value}")

    expected = f"Bearer {api_key}".encode() if api_key else None

    def authorise(request: Request) -> None:
        if expected is None:
            return
        given = request.headers.get("authorization", "").encode()
        if not hmac.compare_digest(given, expected):
            raise ApiError(401, "missing or wrong API key", kind="authentication_error")

    app = FastAPI(
        title="emergent-alignment",
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
        dependencies=[Depends(authorise)],
    )
    app.state.service, app.state.pending = service, 0

    @app.exception_handler(ApiError)
    async def api_error(request: Request, e: ApiError) -> JSONResponse:
        return error_response(e)

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, e: HTTPException) -> JSONResponse:  # unknown route, wrong method
        path = request.url.path
        if e.status_code == 404:
            return error_response(ApiError(404, f"no route {path!r}", kind="not_found_error"))
        if e.status_code == 405:
            return error_response(ApiError(405, f"method {request.method} not allowed on {path!r}"))
        return error_response(ApiError(e.status_code, str(e.detail)))

    @app.get("/health")
    async def health() -> dict:
        return {"status": "ok"}

    @app.get("/v1/models")
    @app.get("/models", include_in_schema=False)
    async def models() -> dict:
        return service.models()

    @app.post("/v1/chat/completions")
    @app.post("/chat/completions", include_in_schema=False)
    async def chat_completions(request: Request):
        body = await read_json(request, max_body, body_timeout)
        if app.state.pending >= max_pending:
            raise ApiError(503, "too many pending requests; retry later", kind="server_error")
        app.state.pending += 1  # the event loop is one thread: no lock needed
        try:
            response, stream = await run_in_threadpool(service.complete, body)
        except ApiError:
            raise
        except Exception:  # a bug, not bad input: log it, answer 500, keep serving
            logger.exception("chat completion failed")
            raise ApiError(500, "internal error", kind="server_error") from None
        finally:
            app.state.pending -= 1
        if stream:
            return StreamingResponse(sse_events(response), media_type="text/event-stream", headers=NO_CACHE)
        return response

    return app


NO_CACHE = {"Cache-Control": "no-cache"}


def sse_events(response: dict):
    for chunk in stream_chunks(response):
        yield f"data: {json.dumps(chunk, ensure_ascii=False)}\n\n"
    yield "data: [DONE]\n\n"


async def read_json(request: Request, max_body: int, timeout: float):
    """The request body as JSON, at most `max_body` bytes, read within `timeout` seconds."""
    length = request.headers.get("content-length")
    if length is not None and not length.isdigit():
        raise ApiError(400, f"bad Content-Length {length!r}")
    if length is not None and int(length) > max_body:
        raise ApiError(413, f"request body of {length} bytes is over the limit of {max_body}")
    raw = bytearray()
    try:
        with anyio.fail_after(timeout):
            async for chunk in request.stream():
                raw += chunk
                if len(raw) > max_body:
                    raise ApiError(413, f"request body of over {max_body} bytes is over the limit of {max_body}")
    except TimeoutError:
        raise ApiError(408, f"the request body did not arrive within {timeout:g}s") from None
    except ClientDisconnect:  # nobody is left to read the answer; no traceback in the log
        raise ApiError(400, "the client hung up before sending its whole body") from None
    if not raw.strip():
        raise ApiError(400, "missing request body: a JSON object is expected")
    try:
        return json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ApiError(400, f"malformed JSON body: {e}") from None


class Server:
    """A uvicorn server on a socket bound at construction (so port 0 is known before serving)."""

    def __init__(self, app: FastAPI, host: str = "127.0.0.1", port: int = 0, keep_alive: float = 5.0):
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.socket = socket.socket(family, socket.SOCK_STREAM)
        self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            self.socket.bind((host, port))
        except OSError as e:
            self.socket.close()
            raise OSError(f"cannot bind {host}:{port}: {e.strerror}") from None
        self.socket.listen(2048)  # a burst queues here instead of being refused
        self.server_address = self.socket.getsockname()[:2]
        self.app = app
        config = uvicorn.Config(app, log_config=None, timeout_keep_alive=keep_alive, timeout_graceful_shutdown=30)
        self.uvicorn = uvicorn.Server(config)
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host, port = self.server_address
        return f"http://{f'[{host}]' if ':' in host else host}:{port}/v1"

    def serve(self) -> None:
        """Serve until Ctrl-C (or `stop()`): in-flight requests finish, then the socket closes."""
        try:
            self.uvicorn.run(sockets=[self.socket])
        finally:
            self.socket.close()

    def start(self, timeout: float = 30.0) -> Server:
        """Serve in a background thread; returns once the server accepts connections."""
        self._thread = threading.Thread(target=self.serve, name="emergent-alignment-server", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self.uvicorn.started and self._thread.is_alive() and time.monotonic() < deadline:
            time.sleep(0.01)
        if not self.uvicorn.started:
            raise RuntimeError("the server did not start")
        return self

    def stop(self, timeout: float = 30.0) -> None:
        self.uvicorn.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout)


def make_server(
    gen: GuardedGenerator,
    model_name: str,
    host: str = "127.0.0.1",
    port: int = 0,
    max_body: int = 1 << 20,
    max_tokens_cap: int = 512,
    max_pending: int = 128,
    queue_timeout: float = 300.0,
    body_timeout: float = 30.0,
    api_key: str | None = None,
) -> Server:
    """A bound (not yet serving) server for `gen`; `serve()` it, or `start()` and `stop()`."""
    if max_tokens_cap < 1:
        raise ValueError(f"max_tokens_cap must be >= 1, got {max_tokens_cap}")
    if not is_loopback(host):
        logger.warning(
            "binding to %s: anyone who can reach this address can use the model%s",
            host,
            "" if api_key else " (no API key set)",
        )
    service = ChatService(gen, model_name, max_tokens_cap, queue_timeout)
    app = build_app(service, max_body, api_key, max_pending, body_timeout)
    return Server(app, host, port)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
