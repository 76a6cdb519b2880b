"""The guarded OpenAI-compatible server (FastAPI + uvicorn), with a real HTTP client on loopback (ephemeral port)."""

import http.client
import json
import re
import socket
import time
from concurrent.futures import ThreadPoolExecutor

import openai
import pytest
from _adv_helpers import conscience

# FastAPI, uvicorn and openai come with the dev extra (`make test` installs it): no skip, a missing one fails
from emergent_alignment.adversarial.guard import GuardedGenerator
from emergent_alignment.adversarial.openai_api import ChatService
from emergent_alignment.adversarial.server import build_app, make_server

NAME = "tiny-guarded"


@pytest.fixture(scope="module")
def generator(llama):
    return GuardedGenerator(*llama, conscience(llama, flag_threshold=1.0, max_attempts=1, max_new_tokens=4))


def start(gen, **kw):
    return make_server(gen, NAME, "127.0.0.1", 0, **kw).start()


@pytest.fixture()
def server(generator):
    server = start(generator, max_body=4096, max_tokens_cap=16, body_timeout=1.0)
    yield server
    server.stop()
    assert not server._thread.is_alive()


def call(server, method, path, body=None, raw=None, headers=None, timeout=60):
    """One request on a fresh connection: (status, parsed JSON or text)."""
    conn = http.client.HTTPConnection(*server.server_address[:2], timeout=timeout)
    try:
        data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
        conn.request(method, path, body=data, headers={"Content-Type": "application/json", **(headers or {})})
        resp = conn.getresponse()
        text = resp.read().decode()
        kind = resp.getheader("Content-Type", "")
        return resp.status, json.loads(text) if kind.startswith("application/json") else text
    finally:
        conn.close()


def recv_all(sock) -> bytes:
    data = b""
    while chunk := sock.recv(4096):
        data += chunk
    return data


def chat(content, seed=0, **extra):
    return {
        "model": NAME,
        "messages": [{"role": "user", "content": content}],
        "max_tokens": 4,
        "temperature": 1.0,
        "seed": seed,
        **extra,
    }


def test_models_and_one_completion(server):
    assert server.server_address[0] == "127.0.0.1"
    status, body = call(server, "GET", "/v1/models")
    assert status == 200 and [m["id"] for m in body["data"]] == [NAME]
    status, body = call(server, "POST", "/v1/chat/completions", chat("How do I pick a lock?"))
    assert status == 200, body
    assert body["object"] == "chat.completion" and body["model"] == NAME
    msg = body["choices"][0]["message"]
    assert msg["role"] == "assistant" and msg["content"]
    meta = body["emergent_alignment"]
    assert meta["guarded"] and meta["outcome"] == "best" and meta["seed"] == 0
    assert [s["step"] for s in meta["trail"]] == ["draft", "revise"]
    assert body["usage"]["prompt_tokens"] > 0


def test_fifty_concurrent_requests_each_get_their_own_answer(server):
    """Concurrent answers equal the answers to the same requests sent one by one."""
    reqs = [chat(f"Request number {i}: tell me about item {i * 7}.", seed=i) for i in range(50)]
    sequential = [call(server, "POST", "/v1/chat/completions", r)[1] for r in reqs[:10]]
    with ThreadPoolExecutor(50) as pool:
        results = list(pool.map(lambda r: call(server, "POST", "/v1/chat/completions", r), reqs))
    assert all(status == 200 for status, _ in results)
    ids = {body["id"] for _, body in results}
    assert len(ids) == 50
    for (_, body), r in zip(results, reqs):
        assert body["emergent_alignment"]["seed"] == r["seed"]
    for (_, concurrent), alone in zip(results[:10], sequential):
        assert concurrent["choices"] == alone["choices"]
        assert concurrent["emergent_alignment"] == alone["emergent_alignment"]
        assert concurrent["usage"] == alone["usage"]
    lengths = [body["usage"]["prompt_tokens"] for _, body in results]
    assert len(set(lengths)) > 1  # different prompts, different lengths: nothing was swapped wholesale


@pytest.mark.parametrize(
    "body, raw, status, match",
    [
        (None, b"{not json", 400, "malformed JSON"),
        (None, b"\xff\xfe", 400, "malformed JSON"),
        ([1, 2], None, 400, "JSON object"),
        ({**chat("hi"), "tools": []}, None, 400, "unsupported parameter.*tools"),
        ({**chat("hi"), "model": "gpt-4"}, None, 404, "does not exist"),
        ({"model": NAME}, None, 400, "messages"),
        ({"messages": [{"role": "user", "content": "hi"}]}, None, 400, "model"),
        (chat("   "), None, 400, "empty prompt"),
        ({**chat("hi"), "messages": []}, None, 400, "non-empty list"),
        ({**chat("hi"), "messages": [{"role": "hacker", "content": "x"}]}, None, 400, "role"),
        ({**chat("hi"), "n": 2}, None, 400, "'n'"),
        ({**chat("hi"), "max_tokens": 10_000}, None, 400, "max_tokens"),
        ({**chat("hi"), "temperature": "hot"}, None, 400, "temperature"),
        ({**chat("hi"), "top_p": 0}, None, 400, "top_p"),
        ({**chat("hi"), "stream": "yes"}, None, 400, "stream"),
        (None, b"", 400, "missing request body"),
        (None, b"x" * 5000, 413, "over the limit"),
    ],
)
def test_bad_requests_get_a_clear_4xx_and_the_server_stays_up(server, body, raw, status, match):
    got, answer = call(server, "POST", "/v1/chat/completions", body, raw)
    assert got == status, answer
    assert answer["error"]["message"] and re.search(match, answer["error"]["message"])
    assert set(answer["error"]) == {"message", "type", "param", "code"}  # the OpenAI error shape
    assert call(server, "GET", "/health") == (200, {"status": "ok"})


def test_prompt_longer_than_the_context(generator):
    server = start(generator, max_body=1 << 20)
    try:
        status, body = call(server, "POST", "/v1/chat/completions", chat("word " * 750))
        assert status == 400 and "context" in body["error"]["message"]
    finally:
        server.stop()


def test_routes_methods_and_bodies_without_length(server):
    assert call(server, "GET", "/v1/nothing") == (404, error(404, "no route '/v1/nothing'", "not_found_error"))
    assert call(server, "POST", "/v1/completions", chat("hi"))[0] == 404
    status, body = call(server, "DELETE", "/v1/models")
    assert status == 405 and "DELETE" in body["error"]["message"]
    with socket.create_connection(server.server_address[:2], timeout=10) as s:  # no length, no body
        s.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        assert recv_all(s).startswith(b"HTTP/1.1 400")
    # a chunked body is read, and held to the same limit
    chunked = [chat("hi"), {"x": "y" * 5000}]
    for body, status in zip(chunked, (200, 413)):
        data = json.dumps(body).encode()
        conn = http.client.HTTPConnection(*server.server_address, timeout=60)
        conn.request("POST", "/v1/chat/completions", body=iter([data[:10], data[10:]]), encode_chunked=True)
        assert conn.getresponse().status == status
        conn.close()
    assert call(server, "GET", "/health")[0] == 200


def test_an_oversized_body_is_refused_before_it_is_read(server):
    """A Content-Length over the limit gets its 413 at once; the client reads it."""
    status, body = call(server, "POST", "/v1/chat/completions", raw=b"x" * (4 << 20))
    assert status == 413 and "4194304 bytes is over the limit of 4096" in body["error"]["message"]


def test_a_stalled_client_gets_408(server):
    with socket.create_connection(server.server_address[:2], timeout=10) as s:
        s.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{")
        start = time.monotonic()
        reply = recv_all(s)  # the server answers after its 1 s body timeout, then hangs up
        assert reply.startswith(b"HTTP/1.1 408") and b"did not arrive within 1s" in reply
        assert time.monotonic() - start < 8
    assert call(server, "GET", "/health")[0] == 200


def test_a_client_that_hangs_up_mid_body(server, caplog):
    with socket.create_connection(server.server_address[:2], timeout=10) as s:
        s.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{")
    time.sleep(0.5)
    assert call(server, "GET", "/health")[0] == 200
    assert "Exception" not in caplog.text and "Traceback" not in caplog.text


def error(status, message, kind="invalid_request_error"):
    return {"error": {"message": message, "type": kind, "param": None, "code": None}}


def test_streaming(server):
    status, text = call(server, "POST", "/v1/chat/completions", chat("hi", stream=True))
    assert status == 200
    events = [line[len("data: ") :] for line in text.split("\n\n") if line]
    assert events[-1] == "[DONE]"
    first, last = (json.loads(e) for e in events[:-1])
    assert first["object"] == "chat.completion.chunk" and first["choices"][0]["delta"]["content"]
    assert last["choices"][0]["finish_reason"] in ("stop", "length") and last["emergent_alignment"]["trail"]


def test_busy_server_answers_503(generator):
    server = start(generator, queue_timeout=0.2)
    try:
        with server.app.state.service.lock:  # the model is busy
            status, body = call(server, "POST", "/v1/chat/completions", chat("hi"))
        assert status == 503 and "busy" in body["error"]["message"]
        assert call(server, "POST", "/v1/chat/completions", chat("hi"))[0] == 200
    finally:
        server.stop()


def test_too_many_pending_requests_answer_503(generator):
    """Over `max_pending` requests waiting for the model: the next one is refused at once."""
    server = start(generator, max_pending=1, queue_timeout=5)
    try:
        service = server.app.state.service
        with ThreadPoolExecutor(1) as pool:
            with service.lock:  # the model is busy; the first request waits for it
                waiting = pool.submit(call, server, "POST", "/v1/chat/completions", chat("hi"))
                while server.app.state.pending < 1:
                    time.sleep(0.01)
                status, body = call(server, "POST", "/v1/chat/completions", chat("hi"))
                assert status == 503 and "too many pending" in body["error"]["message"]
            assert waiting.result()[0] == 200
    finally:
        server.stop()


def test_api_key(generator, caplog):
    server = start(generator, api_key="s3cret-key")
    try:
        assert call(server, "GET", "/v1/models") == (
            401,
            error(401, "missing or wrong API key", "authentication_error"),
        )
        assert call(server, "GET", "/v1/models", headers={"Authorization": "Bearer wrong"})[0] == 401
        assert call(server, "POST", "/v1/chat/completions", chat("hi"))[0] == 401
        status, body = call(server, "GET", "/v1/models", headers={"Authorization": "Bearer s3cret-key"})
        assert status == 200 and "s3cret" not in json.dumps(body)
    finally:
        server.stop()
    assert "s3cret" not in caplog.text


def test_the_app_without_a_socket(generator):
    """The ASGI app on FastAPI's TestClient: the same routes without a server."""
    from fastapi.testclient import TestClient

    app = build_app(ChatService(generator, NAME, max_tokens_cap=16), max_body=4096)
    with TestClient(app) as client:
        assert client.get("/models").json()["data"][0]["id"] == NAME
        r = client.post("/chat/completions", json=chat("hi"))
        assert r.status_code == 200 and r.json()["emergent_alignment"]["seed"] == 0
        r = client.post("/v1/chat/completions", content=b"{not json")
        assert r.status_code == 400 and r.json()["error"]["type"] == "invalid_request_error"
    with pytest.raises(ValueError, match="max_body must be >= 1"):
        build_app(ChatService(generator, NAME), max_body=0)


def test_shutdown_waits_for_the_request_in_flight_and_frees_the_port(generator):
    server = start(generator)
    address = server.server_address
    assert call(server, "GET", "/health")[0] == 200
    with ThreadPoolExecutor(1) as pool:
        with server.app.state.service.lock:  # a request waits for the model while the server stops
            in_flight = pool.submit(call, server, "POST", "/v1/chat/completions", chat("hi"))
            while server.app.state.pending < 1:
                time.sleep(0.01)
            server.uvicorn.should_exit = True
            time.sleep(0.3)
        assert in_flight.result()[0] == 200  # finished, not cut off
    server.stop()
    assert not server._thread.is_alive()
    with pytest.raises(OSError):
        socket.create_connection(address, timeout=2).close()


def test_the_openai_client(server):
    client = openai.OpenAI(base_url=server.url, api_key="unused", max_retries=0)
    assert [m.id for m in client.models.list()] == [NAME]
    out = client.chat.completions.create(model=NAME, messages=[{"role": "user", "content": "hi"}], max_tokens=4, seed=1)
    assert out.choices[0].message.content and out.model_extra["emergent_alignment"]["trail"]
    with pytest.raises(openai.BadRequestError):
        client.chat.completions.create(model=NAME, messages=[], max_tokens=4)


@pytest.mark.timeout(180)
def test_serve_command(llama_dir):
    """`emergent-alignment serve` as a process: prints its URL, answers, stops on SIGINT."""
    import os
    import re
    import signal
    import subprocess
    import sys

    cmd = [
        sys.executable,
        "-m",
        "emergent_alignment",
        "serve",
        "--model",
        llama_dir,
        "--guard",
        "--port",
        "0",
        "--served-model-name",
        NAME,
        "--max-new-tokens",
        "4",
        "--rounds",
        "1",
    ]
    # A runner started in the background (nohup, CI) can hand its children SIGINT ignored, and
    # Python keeps it ignored: give the server SIGINT's default so Ctrl-C means what it means.
    proc = subprocess.Popen(
        cmd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
        env={**os.environ, "EMERGENT_ALIGNMENT_API_KEY": "", "OMP_NUM_THREADS": "1"},
    )
    try:
        line = proc.stdout.readline()  # blocks until the server is bound (or the process died)
        match = re.search(r"http://(127\.0\.0\.1):(\d+)/v1", line)
        assert match, line

        class Addr:
            server_address = (match.group(1), int(match.group(2)))

        status, body = call(Addr, "POST", "/v1/chat/completions", chat("hi"))
        assert status == 200 and body["emergent_alignment"]["guarded"]
        proc.send_signal(signal.SIGINT)
        rc = proc.wait(timeout=30)
        err = proc.stderr.read()
        assert rc == 0, (rc, err[-2000:])
        assert "Traceback" not in err
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)


def test_serve_without_the_serve_extra(monkeypatch, capsys):
    """Without FastAPI, `serve` says which extra to install: one line, no traceback."""
    import sys

    from emergent_alignment.cli import main

    monkeypatch.delitem(sys.modules, "emergent_alignment.adversarial.server")
    monkeypatch.setitem(sys.modules, "fastapi", None)
    assert main(["serve", "--model", "tiny:llama"]) == 2
    err = capsys.readouterr().err
    assert err == "error: the server needs FastAPI and uvicorn: pip install 'emergent-alignment[serve]'\n"
