#!/usr/bin/env bash
# The whole test suite: installs requirements.txt into .venv if needed, then runs pytest.
# Needs PostgreSQL on 127.0.0.1:5432 (trust auth); the suite creates its own database recsys_test.
# Extra arguments go to pytest (e.g. -k publish, or -m slow for the benchmarks).
set -euo pipefail
source "$(dirname "$0")/bootstrap.sh"
# docker-compose (v1, Debian's package) validates docker-compose.yml offline in tests/dags/test_compose.py.
if ! command -v docker-compose >/dev/null 2>&1 && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "==> installing docker-compose with apt-get (validates docker-compose.yml offline)"
  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends docker-compose; } \
    > "${TMPDIR:-/tmp}/recsys-apt-docker-compose.log" 2>&1 \
    || echo "warning: could not install docker-compose (see ${TMPDIR:-/tmp}/recsys-apt-docker-compose.log); test_compose.py will skip" >&2
fi
# chromium + chromedriver (Debian packages) drive the Recommendations page in
# tests/plugins/test_recsys_ui_browser.py; without them that test skips with the reason.
if ! { command -v chromium >/dev/null 2>&1 && command -v chromedriver >/dev/null 2>&1; } \
    && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "==> installing chromium and chromium-driver with apt-get (headless browser test of the UI plugin)"
  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium chromium-driver; } \
    > "${TMPDIR:-/tmp}/recsys-apt-chromium.log" 2>&1 \
    || echo "warning: could not install chromium (see ${TMPDIR:-/tmp}/recsys-apt-chromium.log); the browser test will skip" >&2
fi
exec python -m pytest "$@"
