"""The guarded OpenAI-compatible server, with a real HTTP client on loopback (ephemeral port)."""

import http.client
import json
import socket
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
from _adv_helpers import conscience

from emergent_alignment.adversarial.guard import GuardedGenerator
from emergent_alignment.adversarial.server import make_server

NAME = "tiny-guarded"


@pytest.fixture(scope="module")
def generator(llama):
    return GuardedGenerator(*llama, conscience(llama, flag_threshold=1.0, max_attempts=1, max_new_tokens=4))


def start(gen, **kw):
    server = make_server(gen, NAME, "127.0.0.1", 0, **kw)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    return server, thread


@pytest.fixture()
def server(generator):
    server, thread = start(generator, max_body=4096, max_tokens_cap=16, socket_timeout=2.0)
    yield server
    server.shutdown()
    server.server_close()
    thread.join(timeout=10)
    assert not thread.is_alive()


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
        (None, b"x" * 5000, 413, "over the limit"),
    ],
)
def test_bad_requests_get_a_clear_4xx_and_the_server_stays_up(server, body, raw, status, match):
    got, answer = call(server, "POST", "/v1/chat/completions", body, raw)
    assert got == status, answer
    assert answer["error"]["message"] and __import__("re").search(match, answer["error"]["message"])
    assert call(server, "GET", "/health") == (200, {"status": "ok"})


def test_prompt_longer_than_the_context(generator):
    server, thread = start(generator, max_body=1 << 20)
    try:
        status, body = call(server, "POST", "/v1/chat/completions", chat("word " * 750))
        assert status == 400 and "context" in body["error"]["message"]
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)


def test_routes_methods_and_missing_length(server):
    assert call(server, "GET", "/v1/nothing")[0] == 404
    assert call(server, "POST", "/v1/completions", chat("hi"))[0] == 404
    assert call(server, "DELETE", "/v1/models")[0] == 405
    with socket.create_connection(server.server_address[:2], timeout=10) as s:
        s.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n\r\n")
        assert recv_all(s).startswith(b"HTTP/1.1 411")
    assert call(server, "GET", "/health")[0] == 200


def test_a_silent_client_is_dropped(server):
    with socket.create_connection(server.server_address[:2], timeout=10) as s:
        s.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nContent-Length: 100\r\n\r\n{")
        assert s.recv(1000) == b""  # the server hung up after its 2 s socket timeout
    assert call(server, "GET", "/health")[0] == 200


def test_streaming(server):
    status, text = call(server, "POST", "/v1/chat/completions", chat("hi", stream=True))
    assert status == 200
    events = [line[len("data: ") :] for line in text.split("\n\n") if line]
    assert events[-1] == "[DONE]"
    first, last = (json.loads(e) for e in events[:-1])
    assert first["object"] == "chat.completion.chunk" and first["choices"][0]["delta"]["content"]
    assert last["choices"][0]["finish_reason"] in ("stop", "length") and last["emergent_alignment"]["trail"]


def test_busy_server_answers_503(generator):
    server, thread = start(generator, queue_timeout=0.2)
    try:
        with server.service.lock:  # the model is busy
            status, body = call(server, "POST", "/v1/chat/completions", chat("hi"))
        assert status == 503 and "busy" in body["error"]["message"]
        assert call(server, "POST", "/v1/chat/completions", chat("hi"))[0] == 200
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)


def test_api_key(generator):
    server, thread = start(generator, api_key="s3cret-key")
    try:
        assert call(server, "GET", "/v1/models")[0] == 401
        assert call(server, "GET", "/v1/models", headers={"Authorization": "Bearer wrong"})[0] == 401
        status, body = call(server, "GET", "/v1/models", headers={"Authorization": "Bearer s3cret-key"})
        assert status == 200 and "s3cret" not in json.dumps(body)
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)


def test_shutdown_frees_the_port(generator):
    server, thread = start(generator)
    address = server.server_address[:2]
    assert call(server, "GET", "/health")[0] == 200
    server.shutdown()
    server.server_close()
    thread.join(10)
    assert not thread.is_alive()
    with pytest.raises(OSError):
        socket.create_connection(address, timeout=2).close()


def test_the_openai_client(server):
    openai = pytest.importorskip("openai")
    host, port = server.server_address[:2]
    client = openai.OpenAI(base_url=f"http://{host}:{port}/v1", api_key="unused", max_retries=0)
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
        assert rc == 0, (rc, proc.stderr.read()[-2000:])
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
