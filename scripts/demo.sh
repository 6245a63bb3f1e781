#!/usr/bin/env bash
# demo.sh — the README's first command (`make demo`): the demo through the mocod daemon.
#
# Starts mocod (unless this demo's mocod is already running) with its state in runs/demo/mocod,
# submits the demo MoCo v2 pretraining on the shipped CIFAR-10 images, then a kNN evaluation and
# a short linear evaluation of its final checkpoint (`after` + `model.pretrained: job:<id>`), and
# shows their live progress with `mococtl watch`. mocod keeps running afterwards so the dashboard
# stays up; a second `make demo` shows the same jobs (or continues them) instead of starting over.
#   env: DEMO_PORT (default 8080), DEMO_ARGS (extra `mococtl submit` arguments for the pretraining)
set -euo pipefail
REPO=$(cd "$(dirname "$0")/.." && pwd)
cd "$REPO"
BIN=${MOCO_BUILD:-build}/bin
STATE=runs/demo/mocod
PORT=${DEMO_PORT:-8080}
export MOCOD_URL=http://127.0.0.1:$PORT
mkdir -p "$STATE"

mocod_alive() { [ -s "$STATE/mocod.pid" ] && kill -0 "$(cat "$STATE/mocod.pid")" 2>/dev/null; }

if ! mocod_alive; then
    rm -f "$STATE/mocod.port"
    nohup "$BIN/mocod" --listen "127.0.0.1:$PORT" --state-dir "$STATE" --data-root "$REPO" \
        >>"$STATE/mocod.log" 2>&1 </dev/null &
    echo $! >"$STATE/mocod.pid"
    for _ in $(seq 100); do [ -s "$STATE/mocod.port" ] && break; mocod_alive || break; sleep 0.1; done
    if ! [ -s "$STATE/mocod.port" ]; then
        echo "demo: mocod did not start; its log ($STATE/mocod.log) ends with:" >&2
        tail -n 5 "$STATE/mocod.log" >&2
        echo "demo: if port $PORT is taken, run: DEMO_PORT=8090 make demo" >&2
        exit 1
    fi
fi
echo "demo: mocod is serving $MOCOD_URL (dashboard: open it in a browser; state in $STATE)"

# The three jobs, submitted once; their ids are kept so that a second run shows the same jobs.
IDS=runs/demo/job-ids
if ! { [ -s "$IDS" ] && "$BIN/mococtl" show "$(head -n1 "$IDS")" >/dev/null 2>&1; }; then
    pre=$("$BIN/mococtl" submit configs/demo_moco_v2_cifar10_small.yaml ${DEMO_ARGS:-})
    knn=$("$BIN/mococtl" submit configs/knn_demo_cifar10_small.yaml --set model.pretrained=job:$pre --after "$pre")
    lin=$("$BIN/mococtl" submit configs/lincls_demo_cifar10_small.yaml --set model.pretrained=job:$pre --after "$pre")
    printf '%s\n' "$pre" "$knn" "$lin" >"$IDS"
fi
mapfile -t jobs <"$IDS"
# A paused job (Ctrl-C of an earlier `make demo` does not pause: the daemon keeps training) is resumed.
for j in "${jobs[@]}"; do "$BIN/mococtl" resume "$j" >/dev/null 2>&1 || true; done

echo "demo: jobs ${jobs[*]} (pretraining, kNN, linear evaluation); Ctrl-C stops watching, not training"
status=0
"$BIN/mococtl" watch "${jobs[@]}" || status=$?
"$BIN/mococtl" ls
echo "demo: dashboard $MOCOD_URL  ·  logs: $BIN/mococtl logs ${jobs[0]}  ·  stop mocod: kill \$(cat $STATE/mocod.pid)"
exit $status
