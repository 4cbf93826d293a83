# Sourced by scripts/demo.sh and scripts/test.sh: create .venv and install requirements.txt into it.
# Re-installs only when requirements.txt or pyproject.toml changed since the last install.
set -euo pipefail
REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO_ROOT"
PYTHON="${PYTHON:-$(command -v python3.11 || command -v python3)}"
if [ ! -x .venv/bin/python ]; then
  echo "==> creating virtual environment .venv with $("$PYTHON" --version)"
  "$PYTHON" -m venv .venv
fi
stamp="$(cat requirements.txt pyproject.toml | sha256sum | cut -d' ' -f1)"
if [ "$(cat .venv/.installed 2>/dev/null || true)" != "$stamp" ]; then
  echo "==> installing requirements.txt into .venv (first time: a few minutes)"
  {
    .venv/bin/python -m pip install --upgrade pip &&
    .venv/bin/python -m pip install -r requirements.txt
  } > .venv/install.log 2>&1 || { tail -40 .venv/install.log; echo "pip install failed; full log: .venv/install.log" >&2; exit 1; }
  .venv/bin/python -m pip install --quiet --no-deps --no-build-isolation -e . > .venv/editable-install.log 2>&1 \
    || { cat .venv/editable-install.log; exit 1; }
  echo "$stamp" > .venv/.installed
fi
export PATH="$REPO_ROOT/.venv/bin:$PATH"
# Nothing in this project may fetch models or data from a hub at run time.
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
