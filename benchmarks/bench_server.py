"""(f) The OpenAI-compatible server under load: today's FastAPI + uvicorn server vs. the server at a
base commit (the standard library's ThreadingHTTPServer before the move), in the same run.

    python benchmarks/bench_server.py [--base REV] [--concurrency 8] [--out docs/results/bench_server.json]

The base server is not copied into the repository: the whole package at REV (REV defaulting to the
last commit before the move to FastAPI) is taken from git history (`git archive`) into a temporary
directory, and the base server process runs on it; the run records whether the protocol module
`openai_api.py` changed since REV. Each server runs in its own process on 127.0.0.1 (a free port), on
the same tiny model with the same guard; this process is the client: `--concurrency` threads, each
with a keep-alive connection, send the same requests to both. Two workloads, each bounded by a
request count and a time limit, base and new in alternating order:

- `models`: `GET /v1/models`, no model work: the HTTP stack alone;
- `chat`: guarded `POST /v1/chat/completions` (4 new tokens, one correction round), each request
  its own prompt and seed: what a client of the guard sees.

Prints requests/s and p50/p99 latency for each server and the ratios (new / base; above 1 for
requests/s and below 1 for latency favour the new server), and writes them to `--out` atomically.
"""

from __future__ import annotations

import argparse
import os
import platform
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time

_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if _ROOT not in sys.path:
    sys.path.insert(0, _ROOT)

NAME = "bench"
SERVER_PATH = "emergent_alignment/adversarial/server.py"
PROTOCOL_PATH = "emergent_alignment/adversarial/openai_api.py"


# -- the server processes -------------------------------------------------------------------------


def child(which: str, base_tree: str | None, threads: int) -> None:
    """Serve the bench model with the `new` or `base` server; print the port; serve until killed.

    The base server runs on the whole package as it was at the base commit (`base_tree`)."""
    if which == "base":
        sys.path.insert(0, base_tree)
    import _common

    _common.setup(threads)
    from emergent_alignment.adversarial.guard import load_generator

    gen = load_generator(_common.model_dir(), True, max_attempts=1, max_new_tokens=4, flag_threshold=1.0)
    if which == "new":
        from emergent_alignment.adversarial.server import make_server

        server = make_server(gen, NAME, "127.0.0.1", 0, max_tokens_cap=16)
        print(f"PORT {server.server_address[1]}", flush=True)
        server.serve()
    else:
        from emergent_alignment.adversarial import server as base

        assert base.__file__.startswith(base_tree), base.__file__  # the base commit's code, not today's
        server = base.make_server(gen, NAME, "127.0.0.1", 0, max_tokens_cap=16)
        print(f"PORT {server.server_address[1]}", flush=True)
        server.serve_forever(poll_interval=0.05)


def git(*args) -> str:
    return subprocess.run(["git", *args], cwd=_ROOT, check=True, capture_output=True, text=True).stdout.strip()


def launch(which: str, base_tree: str, threads: int) -> tuple[subprocess.Popen, int]:
    cmd = [sys.executable, os.path.abspath(__file__), "--child", which, "--base-tree", base_tree]
    cmd += ["--threads", str(threads)]
    path = base_tree if which == "base" else _ROOT
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false", "PYTHONPATH": path}
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, env=env)
    line = proc.stdout.readline()
    if not line.startswith("PORT "):
        proc.kill()
        raise SystemExit(f"the {which} server did not start (exit code {proc.wait()})")
    return proc, int(line.split()[1])


# -- the client -----------------------------------------------------------------------------------


def load(port: int, requests: list[tuple[str, str, dict | None]], concurrency: int, seconds: float) -> dict:
    """Send `requests` (method, path, JSON body) from `concurrency` threads, within `seconds`."""
    import httpx

    latencies, errors, lock = [], [], threading.Lock()
    queue = iter(range(len(requests)))
    deadline = time.perf_counter() + seconds

    def worker():
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=120) as client:
            while time.perf_counter() < deadline:
                with lock:
                    i = next(queue, None)
                if i is None:
                    return
                method, path, body = requests[i]
                t0 = time.perf_counter()
                r = client.request(method, path, json=body)
                dt = time.perf_counter() - t0
                with lock:
                    (latencies if r.status_code == 200 else errors).append(
                        dt if r.status_code == 200 else r.status_code
                    )

    t0 = time.perf_counter()
    pool = [threading.Thread(target=worker) for _ in range(concurrency)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    wall = time.perf_counter() - t0
    lat = sorted(latencies)
    return {
        "requests": len(lat),
        "errors": len(errors),
        "seconds": round(wall, 3),
        "requests_per_s": round(len(lat) / wall, 2),
        "p50_ms": round(1000 * statistics.median(lat), 2),
        "p99_ms": round(1000 * lat[min(len(lat) - 1, int(0.99 * len(lat)))], 2),
    }


def workloads(n_models: int, n_chat: int) -> dict[str, list]:
    import _common

    prompts = _common.prompts(16)
    chat = [
        (
            "POST",
            "/v1/chat/completions",
            {"model": NAME, "messages": prompts[i % len(prompts)], "max_tokens": 4, "seed": i},
        )
        for i in range(n_chat)
    ]
    return {"models": [("GET", "/v1/models", None)] * n_models, "chat": chat}


def last_stdlib_server() -> str:
    """The last commit whose server was the standard library's: the parent of the commit that removed it."""
    moved = git("log", "-1", "--format=%H", "-S", "ThreadingHTTPServer", "--", SERVER_PATH)
    return git("rev-parse", f"{moved}^")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--base",
        help="the commit whose server is the baseline (default: the last one on the standard library's server)",
    )
    ap.add_argument("--concurrency", type=int, default=8, help="client threads (default 8)")
    ap.add_argument("--models-requests", type=int, default=1000, help="GET /v1/models requests per server")
    ap.add_argument("--chat-requests", type=int, default=100, help="chat completions per server")
    ap.add_argument("--seconds", type=float, default=15.0, help="time limit per workload and server")
    ap.add_argument("--out", default=os.path.join(_ROOT, "docs", "results", "bench_server.json"))
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads in each server (default 1)")
    ap.add_argument("--child", choices=["new", "base"], help=argparse.SUPPRESS)
    ap.add_argument("--base-tree", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        return child(args.child, args.base_tree, args.threads)

    base = git("rev-parse", args.base or last_stdlib_server())
    head = git("rev-parse", "HEAD")
    protocol_changed = bool(git("diff", "--stat", base, "--", PROTOCOL_PATH))
    with tempfile.TemporaryDirectory() as tmp:
        archive = subprocess.run(
            ["git", "archive", base, "emergent_alignment"], cwd=_ROOT, check=True, capture_output=True
        )
        subprocess.run(["tar", "-x", "-C", tmp], input=archive.stdout, check=True)
        procs = {}
        try:
            for which in ("base", "new"):
                procs[which] = launch(which, tmp, args.threads)
            results: dict = {}
            for k, (wl, requests) in enumerate(workloads(args.models_requests, args.chat_requests).items()):
                order = ("base", "new") if k % 2 == 0 else ("new", "base")
                load(procs["base"][1], requests[: args.concurrency], args.concurrency, 30)  # warm-up
                load(procs["new"][1], requests[: args.concurrency], args.concurrency, 30)
                results[wl] = {w: load(procs[w][1], requests, args.concurrency, args.seconds) for w in order}
        finally:
            for proc, _ in procs.values():
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    proc.kill()

    for wl, r in results.items():
        b, n = r["base"], r["new"]
        r["ratio"] = {
            "requests_per_s": round(n["requests_per_s"] / b["requests_per_s"], 3),
            "p50": round(n["p50_ms"] / b["p50_ms"], 3),
            "p99": round(n["p99_ms"] / b["p99_ms"], 3),
        }
        for w in ("base", "new"):
            x = r[w]
            print(
                f"{wl:<6} {w:<4} {x['requests']:>5} ok {x['errors']:>3} errors in {x['seconds']:6.2f}s  "
                f"{x['requests_per_s']:8.1f} req/s  p50 {x['p50_ms']:8.2f} ms  p99 {x['p99_ms']:8.2f} ms"
            )
        q = r["ratio"]
        print(f"RATIO {wl} new/base: requests/s {q['requests_per_s']:.2f}x  p50 {q['p50']:.2f}x  p99 {q['p99']:.2f}x")

    import _common

    from emergent_alignment.io import write_json

    out = {
        "command": " ".join(["python benchmarks/bench_server.py", *sys.argv[1:]]),
        "base_commit": base,
        "head_commit": head,
        "base_server": f"{SERVER_PATH} at {base[:12]}, with the whole package at that commit (ThreadingHTTPServer)",
        "new_server": f"{SERVER_PATH} in the working tree (FastAPI + uvicorn)",
        "protocol_changed_since_base": protocol_changed,
        "model": _common.MODEL_SPEC,
        "concurrency": args.concurrency,
        "seconds_limit": args.seconds,
        "torch_threads": args.threads,
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}",
        "results": results,
    }
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    write_json(args.out, out)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
