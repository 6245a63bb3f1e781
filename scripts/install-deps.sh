#!/usr/bin/env bash
# install-deps.sh — installs the Debian packages that building and testing moco-train need.
# Run by `make` before anything is built; cheap when everything is already there. As root it
# installs what is missing with apt-get; otherwise it prints the exact command to run.
set -euo pipefail

build_pkgs=(gcc make pkg-config libturbojpeg0-dev libpng-dev libyaml-dev libcjson-dev libopenblas-dev
            libmicrohttpd-dev libsqlite3-dev libssl-dev libcurl4-openssl-dev libjs-chart.js
            openmpi-bin libopenmpi-dev)
# imagemagick: test_decode.py makes a CMYK JPEG with ImageMagick, the common producer of such files
test_pkgs=(libcmocka-dev python3 python3-torch python3-torchvision python3-numpy python3-pil python3-pytest imagemagick
           chromium python3-websocket sqlite3)

want=("${build_pkgs[@]}")
if [ "${1:-}" = "--test" ]; then want+=("${test_pkgs[@]}"); fi

missing=()
for p in "${want[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" -ne 0 ]; then
    echo "moco: missing Debian packages: ${missing[*]}" >&2
    echo "moco: install them with: sudo apt-get update && sudo apt-get install -y ${missing[*]}" >&2
    exit 1
fi
echo "moco: installing ${missing[*]} (apt-get)" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
