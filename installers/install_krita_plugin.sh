#!/bin/sh
# Install the DNI Krita plugin using the backend's Python (this checkout's .venv when it
# exists), so that the recorded backend command is that venv's `dni`. Options are passed on:
#   installers/install_krita_plugin.sh [--offline] [--zip FILE] [--resource-dir DIR] ...
here=$(cd "$(dirname "$0")/.." && pwd)
py="$here/.venv/bin/python"
[ -x "$py" ] || py=$(command -v python3)
exec "$py" "$here/installers/install_krita_plugin.py" "$@"
