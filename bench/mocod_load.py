#!/usr/bin/python3
"""mocod_load.py — HTTP load on mocod while a job trains: requests/s, latency, and what the
load costs the training job.

Starts a real mocod (tests/python/mocod_harness.py) and a real one-thread pretraining job on the
shipped images, then alternates windows without and with load: client threads (urllib), each
repeating what a dashboard or `mococtl watch` does — GET the job, GET its loss history
downsampled for a chart — at R requests/s per client (0 = as fast as it can). The peer is the
same job in the windows without load: the printed ratio is the job's images/s under load over
its images/s without, measured in the same run from the worker's own `images_per_s` metric.

  bench/mocod_load.py [--clients 32] [--rate 5] [--window 12] [--rounds 2] [--json OUT]
"""
import argparse
import json
import statistics
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "python"))
from mocod_harness import Mocod, make_tiny_dataset, tiny_job  # noqa: E402


def client_loop(url, job_id, rate, stop, latencies, errors):
    paths = [f"/api/v1/jobs/{job_id}", f"/api/v1/jobs/{job_id}/metrics?key=loss&downsample=200"]
    i = 0
    period = 1.0 / rate if rate > 0 else 0.0
    next_t = time.perf_counter()
    while not stop.is_set():
        t0 = time.perf_counter()
        try:
            with urllib.request.urlopen(url + paths[i % 2], timeout=10) as r:
                r.read()
                if r.status != 200:
                    errors.append(r.status)
        except Exception as e:  # noqa: BLE001 — every failure counts, whatever it is
            errors.append(repr(e))
        latencies.append(time.perf_counter() - t0)
        i += 1
        if period:
            next_t += period
            delay = next_t - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            else:
                next_t = time.perf_counter()


def job_rate(m, job_id, t_from, t_to):
    """Mean images_per_s of the worker's metric points stamped inside [t_from, t_to]."""
    _, _, body = m.get(f"/api/v1/jobs/{job_id}/metrics?key=images_per_s&max_results=10000")
    pts = [p["value"] for p in body["points"] if t_from <= p["ts"] <= t_to]
    return statistics.mean(pts) if pts else float("nan"), len(pts)


def run(clients=32, rate=5.0, window=12.0, rounds=2, workdir=None):
    work = Path(workdir or tempfile.mkdtemp(prefix="mocod-load-"))
    data = make_tiny_dataset(work / "data", per_class=16)   # 160 images: 10 steps per epoch
    m = Mocod(work / "state", data_roots=(data,))
    try:
        job = tiny_job(data, **{"optim.epochs": 1000, "checkpoint.every_epochs": 0,
                                "log.print_every": 1, "name": "load-bench"})
        job_id = m.submit(job)
        m.wait_state(job_id, "running", timeout=120)
        time.sleep(window / 2)   # past the first steps (allocation, first decode)
        quiet, loaded, lat, errors, total_req, loaded_time = [], [], [], [], 0, 0.0
        for _ in range(rounds):
            t0 = time.time()
            time.sleep(window)
            quiet.append(job_rate(m, job_id, t0 + 1, time.time()))
            stop, latencies = threading.Event(), []
            threads = [threading.Thread(target=client_loop,
                                        args=(m.url, job_id, rate, stop, latencies, errors))
                       for _ in range(clients)]
            t0 = time.time()
            for t in threads:
                t.start()
            time.sleep(window)
            stop.set()
            for t in threads:
                t.join()
            t1 = time.time()
            loaded.append(job_rate(m, job_id, t0 + 1, t1))
            lat += latencies
            total_req += len(latencies)
            loaded_time += t1 - t0
        m.post(f"/api/v1/jobs/{job_id}/cancel")
        m.wait_state(job_id, "canceled", timeout=120)
    finally:
        m.stop()
    lat.sort()
    q = statistics.mean(r for r, _ in quiet)
    ld = statistics.mean(r for r, _ in loaded)
    return {
        "clients": clients, "rate_per_client": rate, "window_s": window, "rounds": rounds,
        "requests": total_req, "errors": len(errors), "first_errors": [str(e) for e in errors[:3]],
        "requests_per_s": total_req / loaded_time,
        "latency_p50_ms": 1000 * lat[len(lat) // 2], "latency_p99_ms": 1000 * lat[int(len(lat) * 0.99)],
        "images_per_s_quiet": q, "images_per_s_loaded": ld, "ratio_loaded_over_quiet": ld / q,
        "metric_points": [n for _, n in quiet + loaded],
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--clients", type=int, default=32)
    ap.add_argument("--rate", type=float, default=5.0, help="requests/s per client; 0 = unpaced")
    ap.add_argument("--window", type=float, default=12.0, help="seconds per window")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--json", help="also write the result here")
    a = ap.parse_args()
    r = run(a.clients, a.rate, a.window, a.rounds)
    print(f"mocod load: {r['clients']} clients x {r['rate_per_client'] or 'unpaced'} req/s: "
          f"{r['requests_per_s']:.0f} requests/s, p50 {r['latency_p50_ms']:.1f} ms, "
          f"p99 {r['latency_p99_ms']:.1f} ms, errors {r['errors']}")
    print(f"training job: {r['images_per_s_quiet']:.1f} img/s without load, "
          f"{r['images_per_s_loaded']:.1f} with; ratio {r['ratio_loaded_over_quiet']:.3f} "
          f"(peer: the same job without load, same run)")
    if a.json:
        Path(a.json).write_text(json.dumps(r, indent=1))


if __name__ == "__main__":
    main()
