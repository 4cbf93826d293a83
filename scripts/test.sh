#!/usr/bin/env bash
# The whole test suite: installs requirements.txt into .venv if needed, then runs pytest.
# Needs PostgreSQL on 127.0.0.1:5432 (trust auth); the suite creates its own database recsys_test.
# Extra arguments go to pytest (e.g. -k publish, or -m slow for the benchmarks).
set -euo pipefail
source "$(dirname "$0")/bootstrap.sh"
exec python -m pytest "$@"
