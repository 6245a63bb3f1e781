#!/usr/bin/python3
"""alignment_table.py — the tables of docs/accuracy.md from a run_alignment.sh output folder.

Reads, for each seed S found:
  mocod-sS/pretrain.events.jsonl   moco-train's events (metric: mean loss over log windows)
  mocod-sS/knn.events.jsonl        `moco-train knn` events (one eval event)
  mocod-sS/lincls.events.jsonl     `moco-train lincls` events (one eval event per epoch)
  torch-sS/steps.jsonl             the PyTorch reference's per-step losses
  torch-sS/knn.json, torch-sS/lincls.jsonl
and prints Markdown: the per-epoch mean loss of every run, and the final kNN and linear top-1/
top-5 per seed, the means per side, their difference, and whether it is within the target.

usage: alignment_table.py OUT_DIR [--target 1.5]
"""
import argparse
import glob
import json
import os
import re


def read_jsonl(path):
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def mocod_epoch_losses(path):
    """Per-epoch mean loss from metric events, each the mean over the steps since the previous
    one (weighted by those step counts so epochs average over steps, as the torch side does)."""
    sums, counts, prev = {}, {}, 0
    for e in read_jsonl(path):
        if e["kind"] != "metric":
            continue
        n = e["step"] - prev
        prev = e["step"]
        sums[e["epoch"]] = sums.get(e["epoch"], 0.0) + e["loss"] * n
        counts[e["epoch"]] = counts.get(e["epoch"], 0) + n
    return [sums[k] / counts[k] for k in sorted(sums)]


def torch_epoch_losses(path):
    sums, counts = {}, {}
    for e in read_jsonl(path):
        sums[e["epoch"]] = sums.get(e["epoch"], 0.0) + e["loss"]
        counts[e["epoch"]] = counts.get(e["epoch"], 0) + 1
    return [sums[k] / counts[k] for k in sorted(sums)]


def read_jsonl_or_empty(path):
    return read_jsonl(path) if os.path.exists(path) else []


def last_eval(events, what):
    evs = [e for e in events if e.get("kind", "eval") == "eval" and e.get("eval") == what]
    return evs[-1] if evs else None


def metrics(out, side, seed):
    d = os.path.join(out, f"{side}-s{seed}")
    res = {}
    if side == "mocod":
        losses = mocod_epoch_losses(os.path.join(d, "pretrain.events.jsonl"))
        knn = last_eval(read_jsonl_or_empty(os.path.join(d, "knn.events.jsonl")), "knn")
        lin = read_jsonl_or_empty(os.path.join(d, "lincls.events.jsonl"))
        done = os.path.exists(os.path.join(d, "lincls.done"))
    else:
        losses = torch_epoch_losses(os.path.join(d, "steps.jsonl"))
        path = os.path.join(d, "knn.json")
        knn = json.load(open(path)) if os.path.exists(path) else None
        lin = read_jsonl_or_empty(os.path.join(d, "lincls.jsonl"))
        done = None
    lin_evals = [e for e in lin if e.get("kind", "eval") == "eval" and e.get("eval") == "lincls"]
    res["losses"] = losses
    res["lincls_curve"] = [e["top1"] for e in lin_evals]
    # a linear evaluation counts once all its epochs ran (mocod: lincls.done; torch: 5 lines,
    # the recipe's epochs, checked by the caller through lincls_epochs)
    lin_final = lin_evals[-1] if lin_evals and (done or done is None) else None
    for name, ev in (("knn", knn), ("lincls", lin_final)):
        res[f"{name}_top1"] = ev["top1"] if ev else None
        res[f"{name}_top5"] = ev["top5"] if ev else None
    res["lincls_epochs"] = len(lin_evals)
    return res


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--target", type=float, default=1.5)
    args = ap.parse_args()
    seeds = sorted({int(re.search(r"-s(\d+)$", p).group(1))
                    for p in glob.glob(os.path.join(args.out, "mocod-s*"))})
    runs = {(side, s): metrics(args.out, side, s) for side in ("mocod", "torch") for s in seeds}
    cols = [(side, s) for side in ("mocod", "torch") for s in seeds]
    want = max(r["lincls_epochs"] for r in runs.values())
    for r in runs.values():  # an unfinished linear evaluation has no final numbers
        if r["lincls_epochs"] < want:
            r["lincls_top1"] = r["lincls_top5"] = None

    print("Mean training loss per epoch:\n")
    print("| epoch | " + " | ".join(f"{side} seed {s}" for side, s in cols) + " |")
    print("|---" * (len(cols) + 1) + "|")
    n_epochs = max(len(runs[c]["losses"]) for c in cols)
    for ep in range(n_epochs):
        cells = [f"{runs[c]['losses'][ep]:.4f}" if ep < len(runs[c]["losses"]) else "" for c in cols]
        print(f"| {ep + 1} | " + " | ".join(cells) + " |")

    print("\nFinal metrics (top-1 / top-5, %):\n")
    print("| metric | " + " | ".join(f"{side} seed {s}" for side, s in cols)
          + " | mocod mean | torch mean | difference |")
    print("|---" * (len(cols) + 4) + "|")
    worst, complete = 0.0, True
    fmt = lambda v: "—" if v is None else f"{v:.2f}"  # noqa: E731
    for key in ("knn_top1", "knn_top5", "lincls_top1", "lincls_top5"):
        mean = {}
        for side in ("mocod", "torch"):
            vals = [runs[(side, s)][key] for s in seeds if runs[(side, s)][key] is not None]
            complete &= len(vals) == len(seeds)
            mean[side] = sum(vals) / len(vals) if vals else None
        diff = None if None in mean.values() else mean["mocod"] - mean["torch"]
        if diff is not None:
            worst = max(worst, abs(diff))
        print(f"| {key} | " + " | ".join(fmt(runs[c][key]) for c in cols)
              + f" | {fmt(mean['mocod'])} | {fmt(mean['torch'])} | "
              + ("—" if diff is None else f"{diff:+.2f}") + " |")
    print("\nLinear evaluation top-1 after each epoch:\n")
    for c in cols:
        print(f"- {c[0]} seed {c[1]}: " + ", ".join(f"{v:.2f}" for v in runs[c]["lincls_curve"]))
    verdict = "within" if worst <= args.target else "OUTSIDE"
    print(f"\nLargest difference of means: {worst:.2f} points — {verdict} the "
          f"{args.target}-point target" + ("." if complete else
          " (means over the runs that finished; '—' marks a run that did not)."))


if __name__ == "__main__":
    main()
