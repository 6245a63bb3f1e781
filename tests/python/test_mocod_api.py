"""test_mocod_api.py — mocod's HTTP API (docs/mocod-api.md) against the real daemon.

A real build/bin/mocod on a free loopback port and a real tiny pretraining job (seconds on one
core). Every route is exercised over real HTTP: health, Prometheus text, the OpenAPI document,
the job life cycle and its state rules, metric paging and downsampling, server-sent events, logs
(offset, follow), checkpoint downloads (sha256 against the file on disk, byte ranges, 416, the
backbone export), devices and the queue; then auth, the refusal of a non-loopback address
without a token, every spec validation error naming its field, and 404/405/413.
"""
import hashlib
import http.client
import json
import os
import re
import socket
import subprocess
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from mocod_harness import MOCOD, ROOT, Mocod, make_tiny_dataset, tiny_job
from safetensors_np import load

FAR_FUTURE = 4102444800  # 2100-01-01: jobs that wait in the queue


# ---- helpers -------------------------------------------------------------------------------------

class SseReader:
    """A server-sent-events client on http.client: events() yields (kind, data) as they come."""

    def __init__(self, daemon, path, token=None, timeout=30):
        self.conn = http.client.HTTPConnection("127.0.0.1", daemon.port, timeout=timeout)
        headers = {"Accept": "text/event-stream"}
        tok = daemon.token if token is None else token
        if tok:
            headers["Authorization"] = f"Bearer {tok}"
        self.conn.request("GET", path, headers=headers)
        self.resp = self.conn.getresponse()
        self.comments = []

    def events(self):
        kind, data = None, []
        while True:
            line = self.resp.readline()
            if not line:
                return
            line = line.decode().rstrip("\n")
            if line == "":
                if kind or data:
                    yield kind or "message", json.loads("\n".join(data))
                kind, data = None, []
            elif line.startswith(":"):
                self.comments.append(line)
            elif line.startswith("event:"):
                kind = line[6:].strip()
            elif line.startswith("data:"):
                data.append(line[5:].lstrip())

    def close(self):
        self.conn.close()


def raw_http(port, request_bytes, read_timeout=10):
    """Sends bytes on a fresh socket and returns everything the server answers until it closes
    (or the timeout)."""
    s = socket.create_connection(("127.0.0.1", port), timeout=read_timeout)
    try:
        s.sendall(request_bytes)
        chunks = []
        while True:
            try:
                b = s.recv(65536)
            except socket.timeout:
                break
            if not b:
                break
            chunks.append(b)
            if b"\r\n\r\n" in b"".join(chunks) and b"Connection: close" not in b"".join(chunks):
                # keep-alive answer: stop once the declared body is in
                head, _, body = b"".join(chunks).partition(b"\r\n\r\n")
                m = re.search(rb"Content-Length: (\d+)", head, re.I)
                if m and len(body) >= int(m.group(1)):
                    break
        return b"".join(chunks)
    finally:
        s.close()


def assert_error(status, payload, want_status, code=None, field=None):
    assert status == want_status, (status, payload)
    assert isinstance(payload, dict) and "error" in payload, payload
    err = payload["error"]
    assert isinstance(err["message"], str) and len(err["message"]) > 10, err
    if code:
        assert err["code"] == code, err
    if field:
        assert err.get("field") == field, err


def documented_routes():
    """(method, path) of every row of the API table in docs/mocod-api.md."""
    text = (ROOT / "docs" / "mocod-api.md").read_text()
    routes = set()
    for m in re.finditer(r"^\| `(GET|POST|DELETE|PUT) ([^` ?]+)[^`]*`", text, re.M):
        routes.add((m.group(1), m.group(2)))
    # "`GET /api/v1/jobs/{id}/events` ...; `GET /api/v1/events` all jobs"
    for m in re.finditer(r"`(GET|POST|DELETE) (/api/v1/[^` ?]+)`", text):
        routes.add((m.group(1), m.group(2)))
    return routes


# ---- fixtures ------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    return make_tiny_dataset(tmp_path_factory.mktemp("data"))


@pytest.fixture(scope="module")
def daemon(tmp_path_factory, data_dir):
    m = Mocod(tmp_path_factory.mktemp("state"), data_roots=(ROOT, data_dir))
    yield m
    m.stop()


@pytest.fixture(scope="module")
def finished(daemon, data_dir):
    """One real job, watched as it runs: the all-jobs event stream opened before the submit,
    the log followed from the start; returns what they saw once the job completed."""
    sse = SseReader(daemon, "/api/v1/events")
    seen = []
    job_id = daemon.submit(tiny_job(data_dir, name="watched"))
    followed = {}

    def follow():
        st, hdrs, body = daemon.get(f"/api/v1/jobs/{job_id}/logs?follow=1", raw=True, timeout=300)
        followed.update(status=st, headers=hdrs, body=body)

    def watch():
        for kind, data in sse.events():
            seen.append((kind, data))
            if kind == "state" and data.get("job") == job_id and data.get("to") in ("completed", "failed"):
                return

    tf = threading.Thread(target=follow)
    tw = threading.Thread(target=watch, daemon=True)
    tf.start()
    tw.start()
    job = daemon.wait_state(job_id, ("completed", "failed"), timeout=300)
    assert job["state"] == "completed", job
    tf.join(60)
    assert not tf.is_alive(), "logs?follow=1 did not end after the job completed"
    tw.join(30)
    sse.close()
    return {"id": job_id, "job": job, "events": seen, "followed": followed}


def queued_job(daemon, data_dir, **kw):
    """A job that waits in the queue (not_before far in the future)."""
    spec = tiny_job(data_dir, **kw)
    spec["not_before"] = FAR_FUTURE
    return daemon.submit(spec)


# ---- service routes ----------------------------------------------------------------------------

def test_healthz(daemon):
    st, hdrs, h = daemon.get("/healthz")
    assert st == 200 and hdrs["Content-Type"].startswith("application/json")
    assert h["status"] == "ok"
    assert isinstance(h["version"], str) and h["version"]
    assert isinstance(h["uptime_s"], (int, float)) and h["uptime_s"] >= 0
    assert isinstance(h["jobs_running"], int)


PROM_LINE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{([a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\]|\\.)*",?)*\})? '
                       r'(-?[0-9.eE+-]+|NaN|\+Inf|-Inf)( -?[0-9]+)?$')


def parse_prometheus(text):
    """{(name, labels string): value}; every line must be a comment or a valid sample."""
    samples = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            if line.startswith("# TYPE"):
                assert len(line.split()) == 4, line
            continue
        m = PROM_LINE.match(line)
        assert m, f"not Prometheus text format: {line!r}"
        samples[(m.group(1), m.group(2) or "")] = float(m.group(4))
    return samples


def test_prometheus_metrics(daemon, finished):
    daemon.get("/healthz")
    st, hdrs, body = daemon.get("/metrics", raw=True)
    assert st == 200 and hdrs["Content-Type"].startswith("text/plain")
    samples = parse_prometheus(body.decode())
    names = {n for n, _ in samples}
    assert {"mocod_uptime_seconds", "mocod_http_requests_total", "mocod_jobs"} <= names, names
    assert samples[("mocod_http_requests_total", '{code="200"}')] >= 1
    assert samples[("mocod_http_requests_total", '{code="201"}')] >= 1
    # the counter moves: one more 404 shows up
    before = samples.get(("mocod_http_requests_total", '{code="404"}'), 0)
    daemon.get("/no/such/route")
    after = parse_prometheus(daemon.get("/metrics", raw=True)[2].decode())
    assert after[("mocod_http_requests_total", '{code="404"}')] == before + 1


def test_openapi_lists_every_documented_route(daemon):
    st, _, doc = daemon.get("/api/v1/openapi.json")
    assert st == 200 and isinstance(doc, dict)
    assert doc["openapi"].startswith("3.0")
    routes = documented_routes()
    assert len(routes) >= 19, routes
    for method, path in routes:
        assert path in doc["paths"], f"{path} missing from openapi.json"
        assert method.lower() in doc["paths"][path], f"{method} {path} missing from openapi.json"
    # every {param} of a path is declared, and every $ref resolves
    for path, item in doc["paths"].items():
        for op_name, op in item.items():
            if op_name == "parameters":
                continue
            declared = {p.get("name") for p in item.get("parameters", []) + op.get("parameters", [])
                        if "name" in p} | {"id" for p in item.get("parameters", []) + op.get("parameters", [])
                                           if "$ref" in p}
            for name in re.findall(r"\{(\w+)\}", path):
                assert name in declared, f"{op_name} {path}: path parameter {name} not declared"
    text = json.dumps(doc)
    for ref in set(re.findall(r'"\$ref": "#/([^"]+)"', text)):
        node = doc
        for part in ref.split("/"):
            node = node[part]


# ---- jobs ------------------------------------------------------------------------------------

def test_submit_get_and_events(daemon, finished):
    job = finished["job"]
    assert job["id"] == finished["id"] and job["name"] == "watched" and job["kind"] == "pretrain"
    assert job["finished_at"] >= job["started_at"] >= job["created_at"] > 0
    states = [t["to"] for t in job["transitions"]]
    assert states[-1] == "completed" and "running" in states, states
    # the event stream opened before the submit saw this job's state changes, in order
    mine = [d for k, d in finished["events"] if k == "state" and d.get("job") == finished["id"]]
    assert mine, finished["events"][:20]
    assert [d["to"] for d in mine][-1] == "completed"
    assert all({"from", "to", "reason"} <= set(d) for d in mine)
    kinds = {k for k, d in finished["events"] if d.get("job") == finished["id"]}
    assert {"state", "metric"} <= kinds, kinds


def test_submit_answers_201_with_location(daemon, data_dir):
    st, hdrs, job = daemon.post("/api/v1/jobs", {**tiny_job(data_dir), "not_before": FAR_FUTURE})
    assert st == 201
    assert hdrs["Location"] == f"/api/v1/jobs/{job['id']}"
    assert job["state"] == "queued"
    st, _, again = daemon.get(hdrs["Location"])
    assert st == 200 and again["id"] == job["id"]
    daemon.post(f"/api/v1/jobs/{job['id']}/cancel")


def test_submit_yaml_body(daemon, data_dir):
    spec = tiny_job(data_dir, name="from-yaml")
    yaml_text = (f"name: from-yaml\nnot_before: {FAR_FUTURE}\nkind: pretrain\n"
                 f"model: {{arch: resnet18, cifar_stem: true, dim: 32}}\nmoco: {{k: 64}}\n"
                 f"data: {{train: {spec['data']['train']}, image_size: 32, workers: 1}}\n"
                 f"optim: {{batch_size: 16, epochs: 1}}\nresources: {{gpus: 0, threads: 1}}\n")
    for ctype in ("application/yaml", "text/yaml", None):
        headers = {"Content-Type": ctype} if ctype else {}
        st, _, job = daemon.post("/api/v1/jobs", yaml_text, headers=headers)
        assert st == 201, (ctype, job)
        assert job["name"] == "from-yaml"
        daemon.post(f"/api/v1/jobs/{job['id']}/cancel")


def test_list_paging_and_state_filter(daemon, data_dir):
    ids = [queued_job(daemon, data_dir, name=f"page-{i}") for i in range(5)]
    seen, token, pages = [], None, 0
    while True:
        path = "/api/v1/jobs?state=queued&limit=2" + (f"&page_token={token}" if token else "")
        st, _, page = daemon.get(path)
        assert st == 200 and len(page["jobs"]) <= 2
        assert all(j["state"] == "queued" for j in page["jobs"])
        seen += [j["id"] for j in page["jobs"]]
        pages += 1
        token = page["next_page_token"]
        if token is None:
            break
        assert pages < 50
    assert set(ids) <= set(seen)
    assert seen == sorted(seen, reverse=True), "newest first"
    assert len(seen) == len(set(seen)), "a job on two pages"
    # another state filter leaves them out; several states at once
    st, _, done = daemon.get("/api/v1/jobs?state=completed,failed&limit=500")
    assert st == 200 and not set(ids) & {j["id"] for j in done["jobs"]}
    st, _, page = daemon.get("/api/v1/jobs?limit=1")
    assert st == 200 and len(page["jobs"]) == 1 and page["next_page_token"]
    for i in ids:
        daemon.post(f"/api/v1/jobs/{i}/cancel")
    for bad in ("limit=0", "limit=501", "limit=abc", "limit=1.5", "limit=-1", "limit=99999999999999999999"):
        st, _, e = daemon.get(f"/api/v1/jobs?{bad}")
        assert_error(st, e, 400, field="limit")
    st, _, e = daemon.get("/api/v1/jobs?state=bogus")
    assert st == 400, e


def test_pause_resume_priority_cancel_delete(daemon, data_dir):
    a = queued_job(daemon, data_dir, name="a")
    b = queued_job(daemon, data_dir, name="b")
    # queued → paused at once; paused → queued
    st, _, j = daemon.post(f"/api/v1/jobs/{a}/pause")
    assert st == 202 and j["state"] == "paused", j
    st, _, e = daemon.post(f"/api/v1/jobs/{a}/pause")  # again: a no-op or a conflict, never a change
    if st == 202:
        assert e["state"] == "paused", e
    else:
        assert_error(st, e, 409, code="conflict")
    st, _, j = daemon.post(f"/api/v1/jobs/{a}/resume")
    assert st == 202 and j["state"] == "queued", j
    st, _, e = daemon.post(f"/api/v1/jobs/{a}/resume")
    assert_error(st, e, 409, code="conflict")
    # priority reorders the queue
    order = [j["id"] for j in daemon.get("/api/v1/queue")[2]["queued"]]
    assert order.index(a) < order.index(b)
    st, _, j = daemon.post(f"/api/v1/jobs/{b}/priority", {"priority": 10})
    assert st == 200 and j["priority"] == 10
    order = [j["id"] for j in daemon.get("/api/v1/queue")[2]["queued"]]
    assert order.index(b) < order.index(a)
    for bad in ({}, {"priority": "high"}, {"priority": 1.5}, {"priority": 1e300}, [], {"priority": None}):
        st, _, e = daemon.post(f"/api/v1/jobs/{b}/priority", bad)
        assert_error(st, e, 400, field="priority")
    # delete only finished jobs
    st, _, e = daemon.request("DELETE", f"/api/v1/jobs/{a}")
    assert_error(st, e, 409, code="conflict")
    for i in (a, b):
        st, _, j = daemon.post(f"/api/v1/jobs/{i}/cancel")
        assert st == 202 and j["state"] in ("canceling", "canceled"), j
        assert daemon.wait_state(i, "canceled", timeout=30)
    st, _, e = daemon.post(f"/api/v1/jobs/{a}/cancel")
    assert_error(st, e, 409, code="conflict")
    st, _, body = daemon.request("DELETE", f"/api/v1/jobs/{a}")
    assert st == 204 and body in (b"", None)
    st, _, e = daemon.get(f"/api/v1/jobs/{a}")
    assert_error(st, e, 404, code="not_found")
    st, _, e = daemon.request("DELETE", f"/api/v1/jobs/{a}")
    assert_error(st, e, 404)
    daemon.request("DELETE", f"/api/v1/jobs/{b}")


def test_actions_on_a_completed_job(daemon, finished):
    jid = finished["id"]
    for action in ("cancel", "pause"):
        st, _, e = daemon.post(f"/api/v1/jobs/{jid}/{action}")
        assert_error(st, e, 409, code="conflict")


def test_job_event_stream_is_filtered(daemon, data_dir):
    a = queued_job(daemon, data_dir, name="ev-a")
    b = queued_job(daemon, data_dir, name="ev-b")
    sse = SseReader(daemon, f"/api/v1/jobs/{a}/events")
    assert sse.resp.status == 200
    assert sse.resp.getheader("Content-Type").startswith("text/event-stream")
    daemon.post(f"/api/v1/jobs/{b}/cancel")
    daemon.post(f"/api/v1/jobs/{a}/cancel")
    kind, data = next(sse.events())
    assert kind == "state" and data["job"] == a, (kind, data)
    sse.close()
    st, _, e = daemon.get("/api/v1/jobs/987654/events")
    assert_error(st, e, 404)


# ---- metrics -----------------------------------------------------------------------------------

def test_metric_keys_and_points(daemon, finished):
    jid = finished["id"]
    st, _, keys = daemon.get(f"/api/v1/jobs/{jid}/metrics")
    assert st == 200 and {"loss", "acc1", "lr"} <= set(keys["keys"]), keys
    st, _, pts = daemon.get(f"/api/v1/jobs/{jid}/metrics?key=loss")
    assert st == 200 and pts["key"] == "loss"
    steps = [p["step"] for p in pts["points"]]
    assert steps == sorted(steps) and len(steps) == len(set(steps)) and len(steps) >= 4, steps
    assert all(isinstance(p["value"], float) and p["ts"] > 0 for p in pts["points"])
    # the events carried the same losses
    ev = {d["step"]: d["loss"] for k, d in finished["events"] if k == "metric" and d.get("job") == jid}
    for p in pts["points"]:
        if p["step"] in ev:
            assert abs(p["value"] - ev[p["step"]]) < 1e-4 * max(1.0, abs(ev[p["step"]]))
    # since_step
    st, _, later = daemon.get(f"/api/v1/jobs/{jid}/metrics?key=loss&since_step={steps[1]}")
    assert [p["step"] for p in later["points"]] == steps[2:]
    # paging one point at a time walks every step once
    got, token = [], None
    while True:
        q = f"/api/v1/jobs/{jid}/metrics?key=loss&max_results=1" + (f"&page_token={token}" if token else "")
        st, _, page = daemon.get(q)
        assert st == 200 and len(page["points"]) <= 1
        got += [p["step"] for p in page["points"]]
        token = page["next_page_token"]
        if not token:
            break
        assert len(got) < 1000
    assert got == steps
    # downsample: at most D points, each the mean of its bucket at the bucket's last step
    st, _, one = daemon.get(f"/api/v1/jobs/{jid}/metrics?key=loss&downsample=1")
    assert st == 200 and len(one["points"]) == 1
    assert one["points"][0]["step"] == steps[-1]
    mean = sum(p["value"] for p in pts["points"]) / len(pts["points"])
    assert abs(one["points"][0]["value"] - mean) < 1e-4 * max(1.0, abs(mean))
    st, _, two = daemon.get(f"/api/v1/jobs/{jid}/metrics?key=loss&downsample=2")
    assert 1 <= len(two["points"]) <= 2
    st, _, many = daemon.get(f"/api/v1/jobs/{jid}/metrics?key=loss&downsample=1000")
    assert [p["step"] for p in many["points"]] == steps
    for bad in ("since_step=abc", "since_step=-2", "max_results=0", "max_results=10001", "downsample=-1",
                "downsample=x", "max_results=1e3"):
        st, _, e = daemon.get(f"/api/v1/jobs/{jid}/metrics?key=loss&{bad}")
        assert_error(st, e, 400, field=bad.split("=")[0])
    st, _, e = daemon.get("/api/v1/jobs/987654/metrics")
    assert_error(st, e, 404)


# ---- logs ----------------------------------------------------------------------------------

def test_logs_offset_and_size(daemon, finished):
    jid = finished["id"]
    on_disk = (daemon.state_dir / "jobs" / str(jid) / "log.txt").read_bytes()
    assert len(on_disk) > 0
    st, hdrs, body = daemon.get(f"/api/v1/jobs/{jid}/logs", raw=True)
    assert st == 200 and hdrs["Content-Type"].startswith("text/plain")
    assert body == on_disk and int(hdrs["X-Log-Size"]) == len(on_disk)
    cut = len(on_disk) // 3
    st, hdrs, tail = daemon.get(f"/api/v1/jobs/{jid}/logs?offset={cut}", raw=True)
    assert st == 200 and tail == on_disk[cut:] and int(hdrs["X-Log-Size"]) == len(on_disk)
    st, hdrs, empty = daemon.get(f"/api/v1/jobs/{jid}/logs?offset={len(on_disk) + 100}", raw=True)
    assert st == 200 and empty == b""
    for bad in ("offset=-1", "offset=abc", "offset=99999999999999999999", "follow=maybe"):
        st, _, e = daemon.get(f"/api/v1/jobs/{jid}/logs?{bad}")
        assert_error(st, e, 400, field=bad.split("=")[0])


def test_logs_follow_streams_until_the_job_ends(daemon, finished):
    jid = finished["id"]
    on_disk = (daemon.state_dir / "jobs" / str(jid) / "log.txt").read_bytes()
    f = finished["followed"]
    assert f["status"] == 200 and f["headers"]["Content-Type"].startswith("text/plain")
    assert f["body"] == on_disk, "the followed log differs from the file"
    # following a finished job sends what is there and ends at once
    t = time.time()
    st, _, body = daemon.get(f"/api/v1/jobs/{jid}/logs?follow=1&offset=10", raw=True, timeout=10)
    assert st == 200 and body == on_disk[10:] and time.time() - t < 5


# ---- checkpoints -----------------------------------------------------------------------------

@pytest.fixture(scope="module")
def checkpoint(daemon, finished):
    jid = finished["id"]
    st, _, lst = daemon.get(f"/api/v1/jobs/{jid}/checkpoints")
    assert st == 200 and lst["checkpoints"], lst
    ck = max(lst["checkpoints"], key=lambda c: c["step"])
    path = daemon.state_dir / "jobs" / str(jid) / "checkpoints" / ck["name"]
    return jid, ck, path


def test_checkpoint_list_and_download(daemon, checkpoint):
    jid, ck, path = checkpoint
    assert {"name", "step", "epoch", "size", "sha256", "mtime"} <= set(ck)
    on_disk = path.read_bytes()
    assert ck["size"] == len(on_disk)
    assert ck["sha256"] == hashlib.sha256(on_disk).hexdigest()
    st, hdrs, body = daemon.get(f"/api/v1/jobs/{jid}/checkpoints/{ck['name']}", raw=True, timeout=60)
    assert st == 200
    assert hdrs["Content-Type"] == "application/octet-stream"
    assert hdrs["Accept-Ranges"] == "bytes"
    assert int(hdrs["Content-Length"]) == len(on_disk)
    assert hashlib.sha256(body).hexdigest() == ck["sha256"]
    tensors, meta = load_bytes(body)
    assert any(n.startswith("encoder_q.") for n in tensors)


def load_bytes(raw):
    import tempfile
    with tempfile.NamedTemporaryFile(suffix=".safetensors") as f:
        f.write(raw)
        f.flush()
        return load(f.name)


def test_checkpoint_ranges(daemon, checkpoint):
    jid, ck, path = checkpoint
    data = path.read_bytes()
    size = len(data)
    url = f"/api/v1/jobs/{jid}/checkpoints/{ck['name']}"
    cases = [("bytes=0-99", 0, 99), (f"bytes=1000-{size // 2}", 1000, size // 2), ("bytes=-100", size - 100, size - 1),
             (f"bytes={size - 10}-", size - 10, size - 1), (f"bytes={size - 5}-{size + 1000}", size - 5, size - 1)]
    for rng, a, b in cases:
        st, hdrs, body = daemon.get(url, headers={"Range": rng}, raw=True)
        assert st == 206, (rng, st)
        assert hdrs["Content-Range"] == f"bytes {a}-{b}/{size}", (rng, hdrs)
        assert int(hdrs["Content-Length"]) == b - a + 1
        assert body == data[a:b + 1], rng
    for rng in (f"bytes={size}-", f"bytes={size + 5}-{size + 10}", "bytes=-0"):
        st, hdrs, e = daemon.get(url, headers={"Range": rng})
        assert_error(st, e, 416, code="range_not_satisfiable")
        assert hdrs["Content-Range"] == f"bytes */{size}"
    # not a single byte range: ignored, whole file
    for rng in ("bytes=0-1,5-9", "items=0-5", "bytes=9-2"):
        st, _, body = daemon.get(url, headers={"Range": rng}, raw=True)
        assert st == 200 and len(body) == size, rng


def test_backbone_export(daemon, checkpoint):
    jid, ck, path = checkpoint
    st, hdrs, body = daemon.get(f"/api/v1/jobs/{jid}/checkpoints/{ck['name']}?format=backbone", raw=True,
                                timeout=120)
    assert st == 200, body[:500]
    backbone, meta = load_bytes(body)
    full, _ = load(path)
    names = set(backbone)
    # torchvision names without prefix, no head, each equal to encoder_q's tensor
    assert {"conv1.weight", "bn1.running_var", "layer1.0.conv1.weight", "layer4.1.bn2.weight"} <= names
    assert not any(n.startswith(("encoder_q.", "encoder_k.", "fc.", "queue", "optim.")) for n in names), names
    for n in names:
        np.testing.assert_array_equal(backbone[n], full["encoder_q." + n])
    assert backbone["conv1.weight"].shape == (64, 3, 3, 3)  # the CIFAR stem
    try:
        import torch
        import torchvision
    except ImportError:
        return
    net = torchvision.models.resnet18()
    net.conv1 = torch.nn.Conv2d(3, 64, 3, 1, 1, bias=False)
    missing, unexpected = net.load_state_dict({k: torch.from_numpy(v) for k, v in backbone.items()}, strict=False)
    assert sorted(missing) == ["fc.bias", "fc.weight"] and not unexpected
    st, _, e = daemon.get(f"/api/v1/jobs/{jid}/checkpoints/{ck['name']}?format=onnx")
    assert_error(st, e, 400, field="format")


def test_checkpoint_not_found(daemon, checkpoint):
    jid, ck, _ = checkpoint
    st, _, e = daemon.get(f"/api/v1/jobs/{jid}/checkpoints/ckpt-nope.safetensors")
    assert_error(st, e, 404)
    st, _, e = daemon.get("/api/v1/jobs/987654/checkpoints")
    assert_error(st, e, 404)


# ---- machine --------------------------------------------------------------------------------

def test_devices_and_queue(daemon, data_dir):
    st, _, d = daemon.get("/api/v1/devices")
    assert st == 200 and isinstance(d["gpus"], list)
    assert d["cpu"]["slots"] == 1 and d["cpu"]["cores"] >= 1 and 0 <= d["cpu"]["used"] <= 1
    a = queued_job(daemon, data_dir, name="q")
    st, _, q = daemon.get("/api/v1/queue")
    assert st == 200 and isinstance(q["running"], list)
    assert a in [j["id"] for j in q["queued"]]
    daemon.post(f"/api/v1/jobs/{a}/cancel")


# ---- auth and startup ---------------------------------------------------------------------------

def test_token_auth(tmp_path, data_dir):
    with Mocod(tmp_path / "st", token="t0ken-for-tests", data_roots=(ROOT, data_dir)) as m:
        for path in ("/api/v1/jobs", "/metrics", "/api/v1/openapi.json", "/api/v1/devices", "/nope"):
            st, hdrs, e = m.get(path, token=None)
            assert_error(st, e, 401, code="unauthorized")
            assert hdrs["WWW-Authenticate"].startswith("Bearer")
            st, _, e = m.get(path, token="wrong-token")
            assert_error(st, e, 401)
        st, _, e = m.get("/api/v1/jobs", headers={"Authorization": "Basic dDBrZW4tZm9yLXRlc3Rz"}, token=None)
        assert st == 401
        assert m.get("/api/v1/jobs")[0] == 200
        assert m.get("/metrics")[0] == 200
        # a POST without the token is refused before its body is used
        st, _, e = m.post("/api/v1/jobs", tiny_job(data_dir), token=None)
        assert st == 401
        assert m.get("/api/v1/jobs")[2]["jobs"] == []
        # open routes
        assert m.get("/healthz", token=None)[0] == 200
        st, _, _ = m.get("/", token=None, raw=True)
        assert st in (200, 404)  # the dashboard may not be built; never 401


def test_non_loopback_without_token_refused(tmp_path):
    r = subprocess.run([str(MOCOD), "--listen", "0.0.0.0:0", "--state-dir", str(tmp_path / "st"),
                        "--data-root", str(ROOT)], capture_output=True, text=True, timeout=20)
    assert r.returncode != 0
    assert "token" in r.stderr and "0.0.0.0" in r.stderr, r.stderr
    assert not (tmp_path / "st" / "mocod.port").exists()


def test_port_file_and_startup_line(daemon):
    port_file = daemon.state_dir / "mocod.port"
    assert int(port_file.read_text()) == daemon.port
    line = [l for l in daemon.stderr().splitlines() if "listening on" in l][0]
    assert f"http://127.0.0.1:{daemon.port}" in line and str(daemon.state_dir) in line
    assert "CPU slot" in line and "GPU" in line


# ---- spec validation: each a 400 naming the field ------------------------------------------------

def spec_error(daemon, spec, field):
    """None when the spec is refused with 400 naming field, else what went wrong."""
    st, _, e = daemon.post("/api/v1/jobs", spec)
    if st == 201:
        daemon.post(f"/api/v1/jobs/{e['id']}/cancel")
        return f"accepted (201) instead of a 400 naming {field}"
    if st != 400 or not isinstance(e, dict) or e.get("error", {}).get("field") != field:
        return f"{st} {e}"
    if len(e["error"].get("message", "")) < 10:
        return f"no useful message: {e}"
    return None


def test_validation_errors_name_the_field(daemon, data_dir, tmp_path):
    base = tiny_job(data_dir)
    outside = make_tiny_dataset(tmp_path / "outside")
    not_a_folder = data_dir / "file.txt"
    not_a_folder.write_text("x")
    cases = [
        ("unknown key", {**base, "bogus": 1}, "bogus"),
        ("unknown nested key", tiny_job(data_dir, **{"optim.lrr": 0.1}), "optim.lrr"),
        ("wrong type", tiny_job(data_dir, **{"optim.lr": "fast"}), "optim.lr"),
        ("wrong type (list)", tiny_job(data_dir, **{"optim.batch_size": [16]}), "optim.batch_size"),
        ("daemon key of the wrong type", {**base, "priority": "high"}, "priority"),
        ("missing data folder", tiny_job(data_dir, **{"data.train": str(data_dir / "no-such-folder")}), "data.train"),
        ("folder outside the data roots", tiny_job(outside), "data.train"),
        ("data folder that is a file", tiny_job(data_dir, **{"data.train": str(not_a_folder)}), "data.train"),
        ("K not a multiple of the batch", tiny_job(data_dir, **{"moco.k": 50}), "moco.k"),
        ("more GPUs than the machine has", tiny_job(data_dir, **{"resources.gpus": 16}), "resources.gpus"),
        ("a class folder instead of the image root",
         tiny_job(data_dir, **{"data.train": str(sorted((data_dir / "train").iterdir())[0])}), "data.train"),
        ("a class folder as data.val",
         tiny_job(data_dir, **{"data.val": str(sorted((data_dir / "val").iterdir())[0])}), "data.val"),
        ("knn without a pretrained backbone", {**base, "kind": "knn"}, "model.pretrained"),
        ("lincls without a pretrained backbone", {**base, "kind": "lincls"}, "model.pretrained"),
    ]
    locked = data_dir / "locked"
    if os.geteuid() != 0:  # root reads everything: the file case above stands in for it
        locked.mkdir(exist_ok=True)
        locked.chmod(0)
        cases.append(("unreadable data folder", tiny_job(data_dir, **{"data.train": str(locked)}), "data.train"))
    try:
        problems = [f"{what}: {p}" for what, spec, field in cases if (p := spec_error(daemon, spec, field))]
    finally:
        if locked.exists():
            locked.chmod(0o755)
    assert not problems, "\n".join(problems)
    # the messages name what is wrong
    st, _, e = daemon.post("/api/v1/jobs", tiny_job(data_dir, **{"data.train": str(data_dir / "no-such-folder")}))
    assert "no-such-folder" in e["error"]["message"]
    st, _, e = daemon.post("/api/v1/jobs", tiny_job(data_dir, **{"resources.gpus": 16}))
    assert "16" in e["error"]["message"]
    st, _, e = daemon.post("/api/v1/jobs", {**base, "kind": "knn"})
    assert "job:<id>" in e["error"]["message"], e
    st, _, e = daemon.post("/api/v1/jobs", tiny_job(data_dir, **{"data.train": str(data_dir / "train" / "cat")}))
    assert "no class folders" in e["error"]["message"], e


# ---- routing errors ------------------------------------------------------------------------------

def test_not_found_and_method_not_allowed(daemon):
    for path in ("/nope", "/api/v1", "/api/v1/jobs/1/nope", "/api/v2/jobs", "/api/v1/jobs/"):
        st, _, e = daemon.get(path)
        assert_error(st, e, 404, code="not_found")
    for path in ("/api/v1/jobs/987654", "/api/v1/jobs/987654/logs", "/api/v1/jobs/987654/checkpoints"):
        st, _, e = daemon.get(path)
        assert_error(st, e, 404, code="not_found")
    st, _, e = daemon.post("/api/v1/jobs/987654/cancel")
    assert_error(st, e, 404)
    st, hdrs, e = daemon.request("PUT", "/api/v1/jobs")
    assert_error(st, e, 405, code="method_not_allowed")
    assert set(hdrs["Allow"].split(", ")) == {"GET", "HEAD", "POST"}
    st, hdrs, e = daemon.post("/healthz", {})
    assert_error(st, e, 405)
    assert "GET" in hdrs["Allow"]
    st, hdrs, e = daemon.request("PATCH", "/api/v1/jobs/1")
    assert_error(st, e, 405)
    assert set(hdrs["Allow"].split(", ")) == {"GET", "HEAD", "DELETE"}


def test_malformed_job_ids(daemon):
    for bad in ("abc", "-1", "0", "1.5", "99999999999999999999", "9223372036854775808", "1e3", "%201"):
        st, _, e = daemon.get(f"/api/v1/jobs/{bad}")
        assert_error(st, e, 400, code="bad_request", field="id")
        st, _, e = daemon.post(f"/api/v1/jobs/{bad}/cancel")
        assert_error(st, e, 400, field="id")


def test_body_too_large(daemon):
    # declared too large: answered at once, without reading (or waiting for) the body
    t = time.time()
    raw = raw_http(daemon.port, b"POST /api/v1/jobs HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                                b"Content-Length: 10485760\r\n\r\n")
    assert raw.startswith(b"HTTP/1.1 413"), raw[:200]
    assert b"payload_too_large" in raw
    assert time.time() - t < 5
    # a chunked body that grows past the limit
    s = socket.create_connection(("127.0.0.1", daemon.port), timeout=10)
    s.sendall(b"POST /api/v1/jobs HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n")
    chunk = b"[" * 65536
    for _ in range(20):
        s.sendall(b"%x\r\n" % len(chunk) + chunk + b"\r\n")
    s.sendall(b"0\r\n\r\n")
    assert s.recv(4096).startswith(b"HTTP/1.1 413")
    s.close()
    # just under the limit is read (and refused as a spec, not as a size)
    st, _, e = daemon.post("/api/v1/jobs", "#" + " " * (1048576 - 10), headers={"Content-Type": "application/yaml"})
    assert st == 400, e
    assert daemon.get("/healthz")[0] == 200


def test_static_files(daemon):
    web = ROOT / "web"
    st, hdrs, body = daemon.get("/api/v1/openapi.json", raw=True)
    assert body == (web / "openapi.json").read_bytes()
    if (web / "index.html").exists():
        st, hdrs, body = daemon.get("/", raw=True)
        assert st == 200 and hdrs["Content-Type"].startswith("text/html")
        assert body == (web / "index.html").read_bytes()
    for f in sorted(web.iterdir()):
        if f.is_file() and not f.name.startswith("."):
            st, _, body = daemon.get(f"/static/{f.name}", raw=True)
            assert st == 200 and body == f.read_bytes(), f.name
    chart = Path("/usr/share/javascript/chart.js/chart.min.js")
    if chart.exists():
        st, hdrs, body = daemon.get("/vendor/chart.js", raw=True)
        assert st == 200 and body == chart.read_bytes() and "javascript" in hdrs["Content-Type"]
    st, _, e = daemon.get("/static/no-such-file.js")
    assert_error(st, e, 404)
