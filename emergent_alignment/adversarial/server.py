"""A guarded OpenAI-compatible HTTP server (`/v1/chat/completions`, `/v1/models`) on localhost.

    emergent-alignment serve --model PATH --guard [--host 127.0.0.1] [--port 8000]

The standard library's ThreadingHTTPServer; the protocol is in `openai_api.py`. Defaults keep it
safe on a shared machine: it binds to 127.0.0.1; request bodies over `--max-body` bytes get a 413
without being read; a client that stalls for `--socket-timeout` seconds is dropped; at most
`--max-pending` requests wait for the model (then 503). Malformed JSON and unsupported parameters
get a 4xx with a clear message, and the server stays up. If the environment variable named by
`--api-key-env` (default EMERGENT_ALIGNMENT_API_KEY) is set, every request must carry it as
`Authorization: Bearer KEY`; the key is read from the environment only and never logged.
Streaming (`"stream": true`) sends the guarded reply as server-sent events once it is final.
"""

from __future__ import annotations

import hmac
import ipaddress
import json
import logging
import os
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from ..commands.common import add_model_arguments, generator_from_args
from .openai_api import ApiError, ChatService, stream_chunks

logger = logging.getLogger(__name__)
DEFAULT_KEY_ENV = "EMERGENT_ALIGNMENT_API_KEY"
UNAUTHORISED = ApiError(401, "missing or wrong API key", kind="authentication_error")
DRAIN_LIMIT = 16 << 20  # an oversized body up to this size is read and dropped before the 413


def add_arguments(p) -> None:
    add_model_arguments(p)
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=int, default=8000, help="port (0: any free port)")
    p.add_argument("--served-model-name", help="the model id clients send (default: --model)")
    p.add_argument("--max-body", type=int, default=1 << 20, help="largest request body in bytes (default 1 MiB)")
    p.add_argument("--max-tokens-cap", type=int, default=512, help="largest max_tokens a request may ask for")
    p.add_argument("--max-pending", type=int, default=128, help="requests that may wait for the model at once")
    p.add_argument("--queue-timeout", type=float, default=300.0, help="seconds a request may wait for the model")
    p.add_argument("--socket-timeout", type=float, default=30.0, help="seconds of client silence before a drop")
    p.add_argument("--api-key-env", default=DEFAULT_KEY_ENV, help="environment variable holding the API key")


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "emergent-alignment"

    # -- plumbing -----------------------------------------------------------------------------

    def log_message(self, fmt, *args):  # request line and status only: never headers or bodies
        logger.info("%s " + fmt, self.address_string(), *args)

    def send_json(self, status: int, body: dict, close: bool = False) -> None:
        data = json.dumps(body, ensure_ascii=False).encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        if close:
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        self.wfile.write(data)

    def send_error_json(self, e: ApiError, close: bool = False) -> None:
        self.send_json(e.status, e.body(), close)

    def send_stream(self, response: dict) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Connection", "close")
        self.close_connection = True
        self.end_headers()
        for chunk in stream_chunks(response):
            self.wfile.write(f"data: {json.dumps(chunk, ensure_ascii=False)}\n\n".encode())
        self.wfile.write(b"data: [DONE]\n\n")

    def authorised(self) -> bool:
        key = self.server.api_key
        if not key:
            return True
        given = self.headers.get("Authorization", "")
        return hmac.compare_digest(given.encode(), f"Bearer {key}".encode())

    # -- routes -------------------------------------------------------------------------------

    def do_GET(self):
        if not self.authorised():
            return self.send_error_json(UNAUTHORISED)
        if self.path in ("/v1/models", "/models"):
            return self.send_json(200, self.server.service.models())
        if self.path == "/health":
            return self.send_json(200, {"status": "ok"})
        self.send_error_json(ApiError(404, f"no route {self.path!r}", kind="not_found_error"))

    def do_POST(self):
        if not self.authorised():
            return self.send_error_json(UNAUTHORISED, close=True)
        if self.path not in ("/v1/chat/completions", "/chat/completions"):
            return self.send_error_json(ApiError(404, f"no route {self.path!r}", kind="not_found_error"), close=True)
        try:
            body = self.read_json()
        except ApiError as e:
            return self.send_error_json(e, close=True)
        if not self.server.pending.acquire(blocking=False):
            return self.send_error_json(ApiError(503, "too many pending requests; retry later", kind="server_error"))
        try:
            response, stream = self.server.service.complete(body)
        except ApiError as e:
            return self.send_error_json(e)
        except Exception:  # a bug, not bad input: log it, answer 500, keep serving
            logger.exception("chat completion failed")
            return self.send_error_json(ApiError(500, "internal error", kind="server_error"))
        finally:
            self.server.pending.release()
        if stream:
            self.send_stream(response)
        else:
            self.send_json(200, response)

    def do_PUT(self):
        self.send_error_json(ApiError(405, f"method {self.command} not allowed"), close=True)

    do_DELETE = do_PATCH = do_PUT

    def read_json(self):
        length = self.headers.get("Content-Length")
        if self.headers.get("Transfer-Encoding") or length is None:
            raise ApiError(411, "a Content-Length header is required (chunked bodies are not accepted)")
        if not length.isdigit():
            raise ApiError(400, f"bad Content-Length {length!r}")
        if int(length) > self.server.max_body:
            self.drain(int(length))  # so that the client reads the 413 instead of a reset connection
            raise ApiError(413, f"request body of {length} bytes is over the limit of {self.server.max_body}")
        raw = self.rfile.read(int(length))
        if len(raw) != int(length):
            raise ApiError(400, "the request body is shorter than its Content-Length")
        try:
            return json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            raise ApiError(400, f"malformed JSON body: {e}") from None

    def drain(self, n: int) -> None:
        """Read and drop up to DRAIN_LIMIT bytes of an oversized body (bounded by the socket timeout)."""
        left = min(n, DRAIN_LIMIT)
        while left > 0:
            chunk = self.rfile.read(min(left, 1 << 16))
            if not chunk:
                break
            left -= len(chunk)


class Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 256  # the listen backlog (socketserver's default of 5 drops bursts)

    def handle_error(self, request, client_address):
        """A client that hung up is routine; anything else is logged (never the request body)."""
        if isinstance(sys.exc_info()[1], (ConnectionError, TimeoutError)):
            logger.info("%s: connection dropped", client_address[0])
        else:
            logger.exception("error while serving %s", client_address[0])


def make_server(
    gen,
    model_name: str,
    host: str = "127.0.0.1",
    port: int = 0,
    max_body: int = 1 << 20,
    max_tokens_cap: int = 512,
    max_pending: int = 128,
    queue_timeout: float = 300.0,
    socket_timeout: float = 30.0,
    api_key: str | None = None,
) -> Server:
    """A bound (not yet serving) server; call `serve_forever()`, then `shutdown()`."""
    if not is_loopback(host):
        logger.warning(
            "binding to %s: anyone who can reach this address can use the model%s",
            host,
            "" if api_key else " (no API key set)",
        )
    handler = type("BoundHandler", (Handler,), {"timeout": socket_timeout})
    server = Server((host, port), handler)
    server.service = ChatService(gen, model_name, max_tokens_cap, queue_timeout)
    server.max_body, server.api_key = max_body, api_key
    server.pending = threading.BoundedSemaphore(max_pending)
    return server


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def run(args) -> int:
    for name in ("max_body", "max_tokens_cap", "max_pending"):
        if getattr(args, name) < 1:
            raise ValueError(f"--{name.replace('_', '-')} must be >= 1")
    gen = generator_from_args(args, args.guard)
    server = make_server(
        gen,
        args.served_model_name or args.model,
        args.host,
        args.port,
        args.max_body,
        args.max_tokens_cap,
        args.max_pending,
        args.queue_timeout,
        args.socket_timeout,
        os.environ.get(args.api_key_env) or None,
    )
    host, port = server.server_address[:2]
    print(
        f"serving {server.service.model_name!r} ({'guarded' if gen.guarded else 'unguarded'}) on "
        f"http://{host}:{port}/v1",
        flush=True,
    )
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    # Handler threads are daemons: one can still be inside torch when the interpreter finalizes,
    # which aborted the process now and then (SIGABRT) after a clean Ctrl-C. Nothing is left to
    # write, so leave without finalizing.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)
