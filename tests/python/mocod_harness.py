"""mocod_harness.py — starts a real mocod on a free port for the daemon tests, and talks to it.

Every daemon test runs the real program (build/bin/mocod) with a fresh state directory under
pytest's tmp_path, listening on 127.0.0.1 with port 0 (mocod picks a free port and writes it to
STATE_DIR/mocod.port). Requests go over real HTTP with urllib. tiny_job() is a pretraining job on
a few of the shipped real images (datasets/cifar10-small) that runs in seconds on one core.
"""
import json
import os
import signal
import sqlite3
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
BUILD = ROOT / os.environ.get("MOCO_BUILD", "build")
MOCOD = BUILD / "bin" / "mocod"
MOCOCTL = BUILD / "bin" / "mococtl"
MOCO_TRAIN = BUILD / "bin" / "moco-train"
CIFAR = ROOT / "datasets" / "cifar10-small"


def make_tiny_dataset(dst, per_class=4):
    """dst/train and dst/val: the first per_class images of each class of cifar10-small, as
    symlinks (10 classes, so 40 images each by default). Returns dst."""
    dst = Path(dst)
    for split in ("train", "val"):
        for cls in sorted((CIFAR / split).iterdir()):
            out = dst / split / cls.name
            out.mkdir(parents=True, exist_ok=True)
            for f in sorted(cls.iterdir())[:per_class]:
                if not (out / f.name).exists():
                    (out / f.name).symlink_to(f)
    return dst


def tiny_job(data_dir, **overrides):
    """A MoCo v2 pretraining on make_tiny_dataset(data_dir): ResNet-18 CIFAR stem, batch 16,
    K 64, 2 epochs of 2 steps (40 images). A step takes a fraction of a second on one core, so
    the job finishes in seconds. Overrides by key path: tiny_job(d, **{"optim.epochs": 3})."""
    data_dir = Path(data_dir)
    job = {
        "name": "tiny",
        "kind": "pretrain",
        "method": "moco_v2",
        "model": {"arch": "resnet18", "cifar_stem": True, "dim": 32},
        "moco": {"k": 64, "m": 0.99, "bn_splits": 1},
        "data": {"train": str(data_dir / "train"), "val": str(data_dir / "val"), "image_size": 32,
                 "val_resize": 32, "workers": 1},
        "optim": {"lr": 0.06, "batch_size": 16, "epochs": 2, "weight_decay": 5e-4},
        "checkpoint": {"every_epochs": 1, "keep_last": 0},
        "resources": {"gpus": 0, "threads": 1},
        "log": {"print_every": 1, "max_steps": 0},
        "seed": 0,
    }
    for path, value in overrides.items():
        node = job
        *parents, leaf = path.split(".")
        for p in parents:
            node = node.setdefault(p, {})
        node[leaf] = value
    return job


class Mocod:
    """A running mocod. Use as a context manager or call stop()."""

    def __init__(self, state_dir, extra_args=(), token=None, data_roots=(ROOT,), env=None):
        self.state_dir = Path(state_dir)
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self.token = token
        self.extra_args = list(extra_args)
        self.data_roots = [str(r) for r in data_roots]
        self.env = env
        self.proc = None
        self.start()

    def start(self, wait=True):
        port_file = self.state_dir / "mocod.port"
        if port_file.exists():
            port_file.unlink()
        args = [str(MOCOD), "--listen", "127.0.0.1:0", "--state-dir", str(self.state_dir)]
        for r in self.data_roots:
            args += ["--data-root", r]
        if self.token:
            tf = self.state_dir / "token"
            tf.write_text(self.token + "\n")
            args += ["--token-file", str(tf)]
        args += self.extra_args
        self.log = open(self.state_dir / "mocod.stderr", "ab")
        self.proc = subprocess.Popen(args, cwd=ROOT, stdout=self.log, stderr=self.log, env=self.env)
        if wait:
            deadline = time.time() + 20
            while time.time() < deadline:
                if self.proc.poll() is not None:
                    raise RuntimeError(f"mocod exited with {self.proc.returncode}: {self.stderr()[-2000:]}")
                if port_file.exists() and port_file.read_text().strip():
                    self.port = int(port_file.read_text())
                    self.url = f"http://127.0.0.1:{self.port}"
                    return
                time.sleep(0.05)
            raise RuntimeError("mocod did not write its port within 20 s: " + self.stderr()[-2000:])

    def stderr(self):
        p = self.state_dir / "mocod.stderr"
        return p.read_text(errors="replace") if p.exists() else ""

    def stop(self, sig=signal.SIGTERM, timeout=60):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()
        return self.proc.returncode

    def kill9(self):
        self.proc.kill()
        self.proc.wait()
        self.log.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()

    # ---- HTTP ---------------------------------------------------------------------------------
    def request(self, method, path, body=None, headers=None, token=..., timeout=30, raw=False):
        """Returns (status, headers, parsed JSON or bytes when raw / not JSON)."""
        hdrs = dict(headers or {})
        tok = self.token if token is ... else token
        if tok:
            hdrs.setdefault("Authorization", f"Bearer {tok}")
        data = None
        if body is not None:
            if isinstance(body, (dict, list)):
                data = json.dumps(body).encode()
                hdrs.setdefault("Content-Type", "application/json")
            else:
                data = body.encode() if isinstance(body, str) else body
        req = urllib.request.Request(self.url + path, data=data, method=method, headers=hdrs)
        try:
            with urllib.request.urlopen(req, timeout=timeout) as r:
                status, rh, payload = r.status, dict(r.headers), r.read()
        except urllib.error.HTTPError as e:
            status, rh, payload = e.code, dict(e.headers), e.read()
        if raw:
            return status, rh, payload
        ctype = rh.get("Content-Type", "")
        if ctype.startswith("application/json") and payload:
            return status, rh, json.loads(payload)
        return status, rh, payload

    def get(self, path, **kw):
        return self.request("GET", path, **kw)

    def post(self, path, body=None, **kw):
        return self.request("POST", path, body=body, **kw)

    def submit(self, job):
        status, _, payload = self.post("/api/v1/jobs", job)
        assert status == 201, f"submit failed: {status} {payload}"
        return payload["id"]

    def job(self, job_id):
        status, _, payload = self.get(f"/api/v1/jobs/{job_id}")
        assert status == 200, payload
        return payload

    def wait_state(self, job_id, states, timeout=300):
        """Polls until the job is in one of states; returns the job object."""
        states = {states} if isinstance(states, str) else set(states)
        deadline = time.time() + timeout
        job = None
        while time.time() < deadline:
            job = self.job(job_id)
            if job["state"] in states:
                return job
            time.sleep(0.1)
        raise AssertionError(f"job {job_id} not in {states} after {timeout}s: {job}\n"
                             + self.stderr()[-2000:])


def wait_until(m, job_id, pred, timeout=120, what="condition"):
    """Polls the job until pred(job) holds; fails early when the job ended without it."""
    deadline = time.time() + timeout
    job = None
    while time.time() < deadline:
        job = m.job(job_id)
        if pred(job):
            return job
        if job["state"] in ("completed", "failed", "canceled"):
            break
        time.sleep(0.05)
    raise AssertionError(f"job {job_id}: {what} never held: {job}\n{m.stderr()[-3000:]}")


def db_steps(state_dir, job_id, key="loss"):
    """The steps of a job's stored metric `key`, in order, read from mocod's SQLite file."""
    con = sqlite3.connect(str(state_dir / "mocod.db"), timeout=10)
    try:
        return [s for (s,) in con.execute(
            "SELECT step FROM metrics WHERE job = ? AND key = ? ORDER BY step", (job_id, key))]
    finally:
        con.close()
