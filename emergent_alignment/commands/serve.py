"""Serve a model, guarded by its conscience, behind an OpenAI-compatible API on localhost.

    emergent-alignment serve --model PATH --guard [--host 127.0.0.1] [--port 8000]

The server is `emergent_alignment.adversarial.server` (FastAPI + uvicorn: the `serve` extra). The
API key, if any, is read from the environment variable named by --api-key-env only.
"""

from __future__ import annotations

import os

from .common import add_model_arguments, generator_from_args

DEFAULT_KEY_ENV = "EMERGENT_ALIGNMENT_API_KEY"
INSTALL_HINT = "the server needs FastAPI and uvicorn: pip install 'emergent-alignment[serve]'"


def add_arguments(p) -> None:
    add_model_arguments(p)
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=int, default=8000, help="port (0: any free port)")
    p.add_argument("--served-model-name", help="the model id clients send (default: --model)")
    p.add_argument("--max-body", type=int, default=1 << 20, help="largest request body in bytes (default 1 MiB)")
    p.add_argument("--max-tokens-cap", type=int, default=512, help="largest max_tokens a request may ask for")
    p.add_argument("--max-pending", type=int, default=128, help="requests that may wait for the model at once")
    p.add_argument("--queue-timeout", type=float, default=300.0, help="seconds a request may wait for the model")
    p.add_argument("--body-timeout", type=float, default=30.0, help="seconds a client may take to send its body")
    p.add_argument("--api-key-env", default=DEFAULT_KEY_ENV, help="environment variable holding the API key")


def run(args) -> int:
    try:
        from ..adversarial.server import make_server
    except ModuleNotFoundError as e:
        if e.name in ("fastapi", "uvicorn", "starlette", "anyio"):
            raise ValueError(INSTALL_HINT) from None
        raise
    for name in ("max_body", "max_tokens_cap", "max_pending"):
        if getattr(args, name) < 1:
            raise ValueError(f"--{name.replace('_', '-')} must be >= 1")
    gen = generator_from_args(args, args.guard)
    server = make_server(
        gen,
        args.served_model_name or args.model,
        host=args.host,
        port=args.port,
        max_body=args.max_body,
        max_tokens_cap=args.max_tokens_cap,
        max_pending=args.max_pending,
        queue_timeout=args.queue_timeout,
        body_timeout=args.body_timeout,
        api_key=os.environ.get(args.api_key_env) or None,
    )
    state = "guarded" if gen.guarded else "unguarded"
    print(f"serving {server.app.state.service.model_name!r} ({state}) on {server.url}", flush=True)
    try:
        server.serve()
    except KeyboardInterrupt:  # uvicorn has shut down gracefully, then re-raised the Ctrl-C
        pass
    return 0
