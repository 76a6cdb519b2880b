"""The OpenAI chat-completions protocol: validate a request, run it guarded, build the response.

Supported request fields: `model` (must name the served model), `messages`, `max_tokens` or
`max_completion_tokens` (1 to the server's cap), `temperature` (0-2), `top_p` (0-1], `seed`,
`n` (1 only), `stream`, `user` (ignored). Any other field is rejected with a 400 naming it, so a
client never silently gets behaviour it did not ask for. The response is a standard
`chat.completion` (or `chat.completion.chunk` events when streaming) with one extra field,
`emergent_alignment`: {guarded, outcome, passed, trail, seed}.

Requests run one at a time on the model (a lock); each response is built only from its own
request's values, so concurrent requests never mix outputs. A request that waits longer than
`queue_timeout` for the model gets a 503.
"""

from __future__ import annotations

import threading
import time
import uuid

from ..chat import encode
from ..data import DataError
from ..generation import SamplingConfig
from .guard import GuardedGenerator, check_conversation

ALLOWED = {
    "model",
    "messages",
    "max_tokens",
    "max_completion_tokens",
    "temperature",
    "top_p",
    "seed",
    "n",
    "stream",
    "user",
}


class ApiError(Exception):
    def __init__(self, status: int, message: str, param: str | None = None, kind: str = "invalid_request_error"):
        super().__init__(message)
        self.status, self.message, self.param, self.kind = status, message, param, kind

    def body(self) -> dict:
        return {"error": {"message": self.message, "type": self.kind, "param": self.param, "code": None}}


def _number(body, key, lo, hi, default, integer=False, lo_open=False):
    value = body.get(key, default)
    kind = int if integer else (int, float)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, kind):
        raise ApiError(400, f"'{key}' must be {'an integer' if integer else 'a number'}", key)
    if (value <= lo if lo_open else value < lo) or (hi is not None and value > hi):
        interval = f"{'(' if lo_open else '['}{lo}, {hi if hi is not None else 'inf'}]"
        raise ApiError(400, f"'{key}' must be in {interval}, got {value}", key)
    return value


def parse_request(body, model_name: str, max_tokens_cap: int) -> dict:
    """Validated request values: messages, sampling, seed, stream. Raises ApiError (4xx)."""
    if not isinstance(body, dict):
        raise ApiError(400, "the request body must be a JSON object")
    unknown = sorted(set(body) - ALLOWED)
    if unknown:
        raise ApiError(
            400, f"unsupported parameter(s): {', '.join(unknown)} (supported: {', '.join(sorted(ALLOWED))})", unknown[0]
        )
    if "model" not in body:
        raise ApiError(400, "missing required parameter 'model'", "model")
    if body["model"] != model_name:
        raise ApiError(
            404,
            f"the model {body['model']!r} does not exist; this server serves {model_name!r}",
            "model",
            "model_not_found",
        )
    if "messages" not in body:
        raise ApiError(400, "missing required parameter 'messages'", "messages")
    try:
        messages = check_conversation(body["messages"])
    except (DataError, ValueError) as e:
        raise ApiError(400, str(e), "messages") from None
    _number(body, "n", 1, 1, 1, integer=True)  # only one choice per request
    if not isinstance(body.get("stream", False), bool):
        raise ApiError(400, "'stream' must be true or false", "stream")
    key = "max_completion_tokens" if "max_completion_tokens" in body else "max_tokens"
    sampling = SamplingConfig(
        _number(body, key, 1, max_tokens_cap, min(128, max_tokens_cap), integer=True),
        _number(body, "temperature", 0, 2, 1.0),
        _number(body, "top_p", 0, 1, 1.0, lo_open=True),
    )
    seed = _number(body, "seed", 0, 2**63 - 1, None, integer=True)
    return {"messages": messages, "sampling": sampling, "seed": seed, "stream": body.get("stream", False)}


class ChatService:
    """Runs validated requests on one generator, one at a time."""

    def __init__(self, gen: GuardedGenerator, model_name: str, max_tokens_cap: int = 512, queue_timeout: float = 300.0):
        self.gen, self.model_name = gen, model_name
        self.max_tokens_cap, self.queue_timeout = max_tokens_cap, queue_timeout
        self.lock = threading.Lock()

    def models(self) -> dict:
        return {
            "object": "list",
            "data": [{"id": self.model_name, "object": "model", "created": 0, "owned_by": "emergent-alignment"}],
        }

    def complete(self, body) -> tuple[dict, bool]:
        """(response, stream) for one request body. Raises ApiError."""
        req = parse_request(body, self.model_name, self.max_tokens_cap)
        gen = GuardedGenerator(
            self.gen.model,
            self.gen.tokenizer,
            self.gen.conscience,
            req["sampling"],
            self.gen.on_fail,
            self.gen.refusal,
            batch_size=1,
        )
        if not self.lock.acquire(timeout=self.queue_timeout):
            raise ApiError(
                503, f"the server is busy: no model slot within {self.queue_timeout:.0f}s", kind="server_error"
            )
        try:
            reply = gen.generate([req["messages"]], seed=req["seed"])[0]
        except ValueError as e:  # e.g. a prompt longer than the context
            raise ApiError(400, str(e), "messages") from None
        finally:
            self.lock.release()
        return self.response(reply, req), req["stream"]

    def response(self, reply, req) -> dict:
        drafted = reply.outcome in ("unguarded", "passed")  # the reply is the draft itself
        hit_limit = drafted and reply.completion_tokens >= req["sampling"].max_new_tokens
        n_out = reply.completion_tokens if drafted else len(encode(self.gen.tokenizer, reply.text))
        return {
            "id": f"chatcmpl-{uuid.uuid4().hex}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": self.model_name,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": reply.text},
                    "finish_reason": "length" if hit_limit else "stop",
                    "logprobs": None,
                }
            ],
            "usage": {
                "prompt_tokens": reply.prompt_tokens,
                "completion_tokens": n_out,
                "total_tokens": reply.prompt_tokens + n_out,
            },
            "emergent_alignment": {
                "guarded": self.gen.guarded,
                "outcome": reply.outcome,
                "passed": reply.passed,
                "trail": reply.trail,
                "seed": req["seed"],
            },
        }


def stream_chunks(response: dict) -> list[dict]:
    """The response as `chat.completion.chunk` events: the whole text, then the finish reason."""
    choice = response["choices"][0]
    head = {k: response[k] for k in ("id", "created", "model")} | {"object": "chat.completion.chunk"}
    return [
        head | {"choices": [{"index": 0, "delta": choice["message"], "finish_reason": None, "logprobs": None}]},
        head
        | {
            "choices": [{"index": 0, "delta": {}, "finish_reason": choice["finish_reason"], "logprobs": None}],
            "usage": response["usage"],
            "emergent_alignment": response["emergent_alignment"],
        },
    ]
