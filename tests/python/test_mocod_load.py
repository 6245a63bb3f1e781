"""test_mocod_load.py — mocod under a loopback load of many concurrent clients while a job trains.

Runs bench/mocod_load.py's measurement, shortened: a real one-thread pretraining job in a real
mocod, 32 client threads each reading the job and its loss chart 5 times a second (what 32 open
dashboards or `mococtl watch` sessions do), in windows that alternate with windows without load.
Asserts that every request was answered 200, that mocod kept up with the offered rate, that the
slowest requests stay fast, and that the job's images/s under load is within 5% of its images/s
without (issue 4's bound; the figures of a longer run are in docs/performance.md).

Tolerances: the offered load is 160 requests/s; "kept up" means at least 90% of that was served
(a client thread's pacing slips by its own latency). p99 under 500 ms: mocod answers these in
about a millisecond, so only a stall (a lock held across a training step, a blocked accept loop)
goes past it. The images/s ratio is compared with 0.95, the issue's bound, taken over two
alternating rounds so that a slow drift of the machine's speed falls on both sides.
"""
import importlib.util
from pathlib import Path


ROOT = Path(__file__).resolve().parents[2]


def load_bench():
    spec = importlib.util.spec_from_file_location("mocod_load", ROOT / "bench" / "mocod_load.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_metrics_readers_do_not_slow_training(tmp_path):
    bench = load_bench()
    r = bench.run(clients=32, rate=5.0, window=10.0, rounds=2, workdir=tmp_path)
    print(r)
    assert r["errors"] == 0, f"requests failed under load: {r['first_errors']}"
    assert r["requests_per_s"] >= 0.9 * 32 * 5.0, f"mocod fell behind the offered load: {r}"
    assert r["latency_p99_ms"] < 500, f"slow answers under load: {r}"
    assert min(r["metric_points"]) >= 3, f"too few images/s points to compare: {r}"
    assert r["ratio_loaded_over_quiet"] >= 0.95, (
        f"the training job lost more than 5% of its images/s to the HTTP load: {r}")
