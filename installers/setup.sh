#!/usr/bin/env bash
# One command on Linux: the backend and its test tools in .venv (this checkout, editable;
# torch for this machine's GPU, see installers/install.py), then the demo on the bundled
# defaults: denoise a noisy photo and draw a strength sweep.
#
#   bash installers/setup.sh            # install + demo (writes out/)
#   bash installers/setup.sh --no-demo  # install only
#   bash installers/setup.sh --plugins  # also install the plugins into Krita / GIMP 3
#   TORCH=cpu bash installers/setup.sh  # pick the torch build (cpu, cuda, rocm, skip;
#                                       # default: the one PyPI offers, see install.py)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

demo=1
plugins=(--no-plugins)
for arg in "$@"; do
  case "$arg" in
    --no-demo) demo=0 ;;
    --plugins) plugins=() ;;
    -h|--help) sed -n '2,10p' "$0"; exit 0 ;;
    *) echo "setup.sh: unknown option $arg" >&2; exit 2 ;;
  esac
done

python=${PYTHON:-}
if [ -z "$python" ]; then
  for candidate in python3.11 python3.12 python3.13 python3; do
    if command -v "$candidate" >/dev/null 2>&1; then python=$candidate; break; fi
  done
fi
if [ -z "$python" ] || ! "$python" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
  echo "setup.sh: needs Python 3.11 or newer (set PYTHON=/path/to/python3.11)" >&2
  exit 1
fi

# PyPI's own torch by default: it is reachable wherever pip works (PyTorch's download
# index is not, on some machines, this project's CI included).
torch=(--torch "${TORCH:-index}")
"$python" installers/install.py --venv .venv --develop "${torch[@]}" "${plugins[@]}"

if [ "$demo" = 1 ]; then
  mkdir -p out
  echo "== installed families"
  .venv/bin/dni families
  echo "== demo: denoise samples/astronaut-noisy-sigma25.png"
  .venv/bin/dni apply samples/astronaut-noisy-sigma25.png -o out/denoised.png \
    --family denoise --preset Medium
  .venv/bin/dni sweep samples/astronaut-noisy-sigma25.png -o out/denoise-sweep.png \
    --family denoise --steps 5 --compare-pixel
  echo "== done: see out/denoised.png and out/denoise-sweep.png"
fi
