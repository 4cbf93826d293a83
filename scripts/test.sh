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
# MLflow's server (tests/recsys_tasks/test_tracking.py) runs from its own virtualenv: no MLflow release
# with model aliases installs against requirements.txt, and the library only speaks its REST API.
# Rebuilt only when missing or when MLFLOW_VERSION changes; without it that test fails and says so.
MLFLOW_VERSION="3.17.2"
if [ "$(cat .venv-mlflow/.installed 2>/dev/null || true)" != "$MLFLOW_VERSION" ]; then
  echo "==> building .venv-mlflow with mlflow==$MLFLOW_VERSION (the tracking server of the MLflow mirror test; a minute)"
  rm -rf .venv-mlflow
  if { "$PYTHON" -m venv .venv-mlflow && .venv-mlflow/bin/python -m pip install "mlflow==$MLFLOW_VERSION"; } \
      > "${TMPDIR:-/tmp}/recsys-mlflow-venv.log" 2>&1; then
    echo "$MLFLOW_VERSION" > .venv-mlflow/.installed
  else
    echo "warning: could not build .venv-mlflow (see ${TMPDIR:-/tmp}/recsys-mlflow-venv.log); test_tracking.py will fail" >&2
  fi
fi
# MariaDB (Debian's mariadb-server, 127.0.0.1:3306, root without a password) is a real source in
# tests/recsys_tasks/data/test_source_dialects.py. Started here when it is installed but not running,
# and stopped again at the end; a server that was already up is left as it was.
started_mariadb=""
if ! mysqladmin -h 127.0.0.1 -u root ping >/dev/null 2>&1 && command -v service >/dev/null 2>&1 \
    && [ "$(id -u)" = 0 ] && service mariadb start > "${TMPDIR:-/tmp}/recsys-mariadb.log" 2>&1; then
  started_mariadb=1
  echo "==> started MariaDB for the source-dialect tests (stopped again afterwards)"
fi
status=0
python -m pytest "$@" || status=$?
if [ -n "$started_mariadb" ]; then
  service mariadb stop >> "${TMPDIR:-/tmp}/recsys-mariadb.log" 2>&1 || true
fi
exit "$status"
