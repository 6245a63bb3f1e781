"""test_mocod_hostile.py — what a careless or hostile client sends mocod, and that it survives.

One real mocod for the whole module. Malformed and deeply nested bodies, wrong types, a 10 MB
upload, path traversal through every path parameter (plain, percent-encoded, with NUL), unknown
and absurd ids and numbers, 64 submissions at once, garbage on a raw socket, and clients that
vanish mid-body or mid-stream. Each answer must be a JSON error with the right status (never a
200 for a trick, never a crash), and at the end /healthz still answers, the process is alive,
and the threads of the departed streams are gone.
"""
import json
import os
import random
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from mocod_harness import ROOT, Mocod, make_tiny_dataset, tiny_job

FAR_FUTURE = 4102444800


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    return make_tiny_dataset(tmp_path_factory.mktemp("data"))


@pytest.fixture(scope="module")
def daemon(tmp_path_factory, data_dir):
    m = Mocod(tmp_path_factory.mktemp("state"), data_roots=(ROOT, data_dir))
    yield m
    alive = m.proc.poll() is None
    code = m.stop()
    assert alive, "mocod died during the hostile tests:\n" + m.stderr()[-3000:]
    assert code == 0, f"mocod exited {code} on SIGTERM:\n" + m.stderr()[-3000:]


def is_json_error(status, payload, statuses):
    assert status in statuses, (status, payload if not isinstance(payload, bytes) else payload[:300])
    assert isinstance(payload, dict) and isinstance(payload.get("error", {}).get("message"), str), payload


def send_raw(port, data, timeout=5):
    """Sends bytes, returns what comes back before the server closes or the timeout."""
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    out = b""
    try:
        s.sendall(data)
        while True:
            try:
                b = s.recv(65536)
            except (socket.timeout, ConnectionResetError):
                break
            if not b:
                break
            out += b
    except (BrokenPipeError, ConnectionResetError):
        pass
    finally:
        s.close()
    return out


def thread_count(daemon):
    for line in open(f"/proc/{daemon.proc.pid}/status"):
        if line.startswith("Threads:"):
            return int(line.split()[1])
    raise AssertionError("no Threads line")


def post_raw(daemon, body, ctype="application/json"):
    return daemon.post("/api/v1/jobs", body, headers={"Content-Type": ctype} if ctype else {})


# ---- bodies ---------------------------------------------------------------------------------

@pytest.mark.parametrize("body,ctype", [
    ('{"kind": "pretrain",', "application/json"),
    ("{'kind': 'pretrain'}", "application/json"),
    ('{"kind": "pretrain"} trailing', "application/json"),
    ("\x00\x01\x02\xff\xfe", "application/json"),
    ("kind: [pretrain\n", "application/yaml"),
    ("kind: pretrain\n\tmodel: x\n", "application/yaml"),
    ("a: &a [*a]\n", "application/yaml"),
    ("a: 1\na: 2\n", "application/yaml"),
    ("--- {}\n--- {}\n", "application/yaml"),
    ("\xef\xbb\xbf\xff\xfe not utf8", None),
    ("", "application/json"),
    ("null", "application/json"),
    ("[]", "application/json"),
    ('"a string"', "application/json"),
    ("12345", "application/json"),
    ("true", None),
])
def test_malformed_bodies(daemon, body, ctype):
    st, _, e = post_raw(daemon, body.encode("latin-1"), ctype)
    is_json_error(st, e, (400,))


def test_deeply_nested_json_and_yaml(daemon):
    t = time.time()
    for body, ctype in (("[" * 100000, "application/json"), ("[" * 100000 + "]" * 100000, "application/json"),
                        ('{"a":' * 50000 + "1" + "}" * 50000, "application/json"),
                        ("[" * 100000, "application/yaml"), ("- " * 30000 + "x\n", "application/yaml"),
                        ("a:\n" + "".join(" " * i + "b:\n" for i in range(1, 1000)), "application/yaml")):
        st, _, e = post_raw(daemon, body, ctype)
        is_json_error(st, e, (400,))
    assert time.time() - t < 30
    assert daemon.get("/healthz")[0] == 200


def test_billion_laughs_yaml(daemon):
    lol = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for i, name in enumerate("bcdefghi"):
        prev = "abcdefghi"[i]
        lol.append(f"{name}: &{name} [" + ",".join([f"*{prev}"] * 9) + "]")
    t = time.time()
    st, _, e = post_raw(daemon, "\n".join(lol) + "\n", "application/yaml")
    is_json_error(st, e, (400,))
    assert time.time() - t < 10


@pytest.mark.parametrize("path,value", [
    ("kind", 5), ("kind", "train"), ("method", ["moco_v2"]), ("model", "resnet50"), ("model.arch", 50),
    ("model.dim", "128"), ("model.dim", -1), ("model.dim", 1e300), ("moco.k", 64.5), ("moco.m", "0.99"),
    ("moco.m", 1.5), ("data", None), ("data.train", 7), ("data.train", ["a"]), ("data.image_size", {}),
    ("optim.lr", "0.1x"), ("optim.lr", -1), ("optim.epochs", 1e20), ("optim.batch_size", 0),
    ("optim.milestones", "120,160"), ("checkpoint", []), ("resources.gpus", -1), ("resources.gpus", "all"),
    ("seed", "zero"), ("seed", -1), ("precision", "fp8"), ("priority", 1.5), ("priority", 1e300),
    ("after", "yesterday"), ("after", -5), ("not_before", "soon"), ("not_before", [1]), ("max_restarts", -1),
    ("name", 12), ("name", {"a": 1}),
])
def test_wrong_types_everywhere(daemon, data_dir, path, value):
    spec = tiny_job(data_dir, **{path: value})
    if path != "not_before":
        spec["not_before"] = FAR_FUTURE  # should it be accepted after all, it must not run
    st, _, e = daemon.post("/api/v1/jobs", spec)
    is_json_error(st, e, (400,))
    assert e["error"]["code"] in ("invalid_spec", "bad_request")


def test_ten_megabyte_body(daemon):
    body = b"x" * (10 * 1024 * 1024)
    t = time.time()
    # declared size: refused before the body is read
    raw = send_raw(daemon.port, b"POST /api/v1/jobs HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                   b"Content-Length: %d\r\n\r\n" % len(body))
    assert raw.startswith(b"HTTP/1.1 413"), raw[:200]
    # a client that sends it all anyway gets the 413 or a closed connection, quickly
    try:
        st, _, e = daemon.post("/api/v1/jobs", body, headers={"Content-Type": "application/json"}, timeout=20)
        is_json_error(st, e, (413,))
    except (ConnectionError, OSError):
        pass
    assert time.time() - t < 10
    assert daemon.get("/healthz")[0] == 200


# ---- paths ----------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def one_job(daemon, data_dir):
    spec = tiny_job(data_dir)
    spec["not_before"] = FAR_FUTURE
    return daemon.submit(spec)


TRAVERSALS = ["..", "%2e%2e", "..%2f..%2fmocod.db", "%2e%2e%2f%2e%2e%2fmocod.db", "..%5c..%5cmocod.db",
              "..%252f..%252fmocod.db", ".%2e/.%2e/mocod.db", "%2fetc%2fpasswd", "mocod.db%00.safetensors",
              "%00", "ckpt%00", ".hidden", "spec.json", "..%2fspec.json", "%2e%2e%2fspec.json"]


@pytest.mark.parametrize("name", TRAVERSALS)
def test_traversal_in_checkpoint_name(daemon, one_job, name):
    st, _, body = daemon.get(f"/api/v1/jobs/{one_job}/checkpoints/{name}", raw=True)
    assert st in (400, 404), (name, st, body[:200])
    assert b"SQLite format" not in body and b"root:" not in body
    assert json.loads(body)["error"]


@pytest.mark.parametrize("name", TRAVERSALS + ["..%2fpackaging%2fmocod.yaml", "..%2f..%2f..%2fetc%2fpasswd",
                                              "%2e%2e%2f%2e%2e%2fMakefile", "openapi.json%00.html"])
def test_traversal_in_static_name(daemon, name):
    st, _, body = daemon.get(f"/static/{name}", raw=True)
    assert st in (400, 404), (name, st, body[:200])
    assert b"root:" not in body and b"SQLite" not in body and b"listen:" not in body


@pytest.mark.parametrize("jid", ["..", "%2e%2e", "..%2f..%2fetc%2fpasswd", "1%00", "%00", "1%2f..", "-0",
                                 "0x1", "%201", "%EF%BC%91", "1%0a"])
def test_traversal_and_junk_in_job_id(daemon, jid):
    for suffix in ("", "/logs", "/checkpoints", "/metrics", "/events"):
        st, _, body = daemon.get(f"/api/v1/jobs/{jid}{suffix}", raw=True)
        assert st in (400, 404), (jid, suffix, st, body[:200])
        assert json.loads(body)["error"]


def test_raw_dot_segments(daemon):
    """Paths with literal ../ that a client did not normalize."""
    for path in (b"/static/../../../etc/passwd", b"/static/../web/openapi.json", b"/api/v1/jobs/1/../../../../etc/passwd",
                 b"/./healthz/..", b"//etc/passwd"):
        raw = send_raw(daemon.port, b"GET " + path + b" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        status = int(raw.split(b" ", 2)[1]) if raw.startswith(b"HTTP/1.") else 0
        assert status in (400, 404), (path, raw[:200])
        assert b"root:" not in raw


# ---- numbers and ids ------------------------------------------------------------------------------

def test_unknown_job_ids_everywhere(daemon):
    jid = 876543
    for method, path in [("GET", ""), ("DELETE", ""), ("POST", "/cancel"), ("POST", "/pause"), ("POST", "/resume"),
                         ("GET", "/metrics"), ("GET", "/metrics?key=loss"), ("GET", "/logs"), ("GET", "/logs?follow=1"),
                         ("GET", "/checkpoints"), ("GET", "/checkpoints/ckpt-1.safetensors"), ("GET", "/events")]:
        st, _, e = daemon.request(method, f"/api/v1/jobs/{jid}{path}", timeout=10)
        is_json_error(st, e, (404,))
    st, _, e = daemon.post(f"/api/v1/jobs/{jid}/priority", {"priority": 1})
    is_json_error(st, e, (404,))


def test_huge_numbers(daemon, one_job):
    for jid in (2 ** 63, 2 ** 64, 10 ** 30, -(2 ** 63)):
        st, _, e = daemon.get(f"/api/v1/jobs/{jid}")
        is_json_error(st, e, (400,))
    for q in ("limit=1e309", "limit=99999999999999999999", "limit=-99999999999999999999", "limit=NaN",
              "limit=inf", "limit=0x10", "limit=%2B5", "limit=%205", "limit=5%20"):
        st, _, e = daemon.get(f"/api/v1/jobs?{q}")
        is_json_error(st, e, (400,))
    for q in ("since_step=99999999999999999999", "max_results=4294967297", "downsample=18446744073709551617"):
        st, _, e = daemon.get(f"/api/v1/jobs/{one_job}/metrics?key=loss&{q}")
        is_json_error(st, e, (400,))
    st, _, e = daemon.get(f"/api/v1/jobs/{one_job}/logs?offset=18446744073709551616")
    is_json_error(st, e, (400,))
    for body in ('{"priority": 2147483648}', '{"priority": -2147483649}', '{"priority": 1e300}',
                 '{"priority": NaN}', '{"priority": Infinity}', '{"priority": 1' + "0" * 400 + '}'):
        st, _, e = daemon.post(f"/api/v1/jobs/{one_job}/priority", body, headers={"Content-Type": "application/json"})
        is_json_error(st, e, (400,))


# ---- concurrency ----------------------------------------------------------------------------------

def test_64_concurrent_submissions(daemon, data_dir):
    spec = tiny_job(data_dir)
    spec["not_before"] = FAR_FUTURE

    def submit(i):
        s = dict(spec, name=f"concurrent-{i}")
        return daemon.post("/api/v1/jobs", s, timeout=60)

    with ThreadPoolExecutor(max_workers=64) as pool:
        results = list(pool.map(submit, range(64)))
    ids = []
    for st, _, body in results:
        if st == 201:
            ids.append(body["id"])
        else:
            is_json_error(st, body, (503, 429))
    assert len(ids) == len(set(ids)), "two submissions got the same id"
    assert len(ids) >= 60, [r[0] for r in results]
    st, _, page = daemon.get("/api/v1/jobs?limit=500")
    listed = {j["id"] for j in page["jobs"]}
    assert set(ids) <= listed
    names = {j["name"] for j in page["jobs"] if j["id"] in ids}
    assert len(names) == len(ids)


# ---- raw sockets -------------------------------------------------------------------------------

def test_garbage_over_raw_sockets(daemon):
    rnd = random.Random(1234)
    payloads = [bytes(rnd.getrandbits(8) for _ in range(n)) for n in (1, 10, 1000, 70000)]
    payloads += [
        b"\r\n\r\n\r\n",
        b"GET\r\n\r\n",
        b"GET / HTTP/9.9\r\n\r\n",
        b"FOO /healthz HTTP/1.1\r\nHost: x\r\n\r\n",
        b"GET /healthz HTTP/1.1\r\nno colon here\r\n\r\n",
        b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 200000 + b"\r\n\r\n",
        b"GET /" + b"a" * 100000 + b" HTTP/1.1\r\nHost: x\r\n\r\n",
        b"POST /api/v1/jobs HTTP/1.1\r\nHost: x\r\nContent-Length: -5\r\n\r\n",
        b"POST /api/v1/jobs HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999999999999999999\r\n\r\n",
        b"POST /api/v1/jobs HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n",
        b"POST /api/v1/jobs HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        b"GET /healthz HTTP/1.1\r\nHost: x\r\n" + b"X-H: v\r\n" * 5000 + b"\r\n",
        b"GET /api/v1/jobs?" + b"&".join(b"k%d=v" % i for i in range(5000)) + b" HTTP/1.1\r\nHost: x\r\n\r\n",
        b"GET /api/v1/jobs?limit=%zz%%% HTTP/1.1\r\nHost: x\r\n\r\n",
        b"GET /healthz HTTP/1.0\r\n\r\n",
    ]
    for p in payloads:
        raw = send_raw(daemon.port, p, timeout=3)
        if raw.startswith(b"HTTP/1."):
            status = int(raw.split(b" ", 2)[1])
            assert status != 500, (p[:80], raw[:300])
        assert daemon.proc.poll() is None, f"mocod died on {p[:80]!r}"
    assert daemon.get("/healthz")[0] == 200


def test_disconnect_mid_body(daemon):
    for _ in range(20):
        s = socket.create_connection(("127.0.0.1", daemon.port), timeout=5)
        s.sendall(b"POST /api/v1/jobs HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                  b"Content-Length: 5000\r\n\r\n{\"kind\": \"pre")
        s.close()
    # and one that stops talking (the idle timeout frees it; it must not block others)
    idle = socket.create_connection(("127.0.0.1", daemon.port), timeout=5)
    idle.sendall(b"POST /api/v1/jobs HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{")
    assert daemon.get("/healthz", timeout=5)[0] == 200
    idle.close()


def settled_thread_count(daemon):
    """The thread count once connections of earlier tests have wound down."""
    last, deadline = thread_count(daemon), time.time() + 10
    while time.time() < deadline:
        time.sleep(0.3)
        now = thread_count(daemon)
        if now == last:
            return now
        last = now
    return last


def test_disconnect_mid_stream_frees_threads(daemon, one_job):
    base = settled_thread_count(daemon)
    socks = []
    for i in range(20):
        s = socket.create_connection(("127.0.0.1", daemon.port), timeout=5)
        path = b"/api/v1/events" if i % 2 else b"/api/v1/jobs/%d/events" % one_job
        s.sendall(b"GET " + path + b" HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\n\r\n")
        socks.append(s)
    for s in socks:
        head = s.recv(4096)
        assert head.startswith(b"HTTP/1.1 200") and b"text/event-stream" in head, head[:300]
    # a followed log of a queued job also streams (it never writes); drop it too
    f = socket.create_connection(("127.0.0.1", daemon.port), timeout=5)
    f.sendall(b"GET /api/v1/jobs/%d/logs?follow=1 HTTP/1.1\r\nHost: x\r\n\r\n" % one_job)
    assert f.recv(4096).startswith(b"HTTP/1.1 200")
    socks.append(f)
    assert thread_count(daemon) >= base + 15  # one thread per open stream
    for s in socks:
        s.close()
    deadline = time.time() + 15
    while time.time() < deadline and thread_count(daemon) > base + 1:
        time.sleep(0.2)
    assert thread_count(daemon) <= base + 1, f"{thread_count(daemon)} threads, {base} before the streams"
    assert daemon.get("/healthz")[0] == 200


def test_sse_keepalive_after_quiet(daemon, one_job):
    """A quiet stream carries a `: keepalive` comment within 15 s (plus slack)."""
    s = socket.create_connection(("127.0.0.1", daemon.port), timeout=25)
    s.sendall(b"GET /api/v1/jobs/%d/events HTTP/1.1\r\nHost: x\r\n\r\n" % one_job)
    got = b""
    deadline = time.time() + 20
    while b": keepalive" not in got and time.time() < deadline:
        b = s.recv(4096)
        if not b:
            break
        got += b
    s.close()
    assert b": keepalive" in got, got[-500:]


def test_still_alive_at_the_end(daemon):
    assert daemon.proc.poll() is None
    st, _, h = daemon.get("/healthz")
    assert st == 200 and h["status"] == "ok"
