#!/usr/bin/env bash
# Puts torchonn 0.0.8 (the comparison row of bench_mzi_mesh.py) into benchmarks/torchonn/lib, beside the
# CPU torch, without touching the environment: its sdist cannot build here (setup.py imports torch and
# CUDA build helpers) and its utility package imports torchvision, mmcv and a CUDA extension at start-up,
# none of which the MZI layer uses on the CPU; sitecustomize.py stands in for those three.
#
#   bash benchmarks/torchonn/setup.sh
#   PYTHONPATH=benchmarks/torchonn:benchmarks/torchonn/lib python benchmarks/bench_mzi_mesh.py
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
lib="$here/lib"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
pip download -q --no-deps --no-binary :all: --no-build-isolation torchonn==0.0.8 -d "$tmp" 2>/dev/null \
  || curl -sSL -o "$tmp/torchonn-0.0.8.tar.gz" "$(curl -sS https://pypi.org/simple/torchonn/ \
       | grep -o 'https://[^"#]*torchonn-0.0.8.tar.gz' | head -1)"
tar xzf "$tmp"/torchonn-0.0.8.tar.gz -C "$tmp"
mkdir -p "$lib"
cp -r "$tmp/torchonn-0.0.8/torchonn" "$lib/"
pip install -q --target "$lib" --no-deps torchonn-pyutils mmengine addict yapf termcolor ryaml multimethod \
  scienceplots svglib reportlab cssselect2 webencodings tinycss2 lxml
PYTHONPATH="$here:$lib" python -c "from torchonn.layers import MZIBlockLinear; print('torchonn importable from', '$lib')"
