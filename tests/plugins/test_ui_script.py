"""scripts/ui.sh opens the UI on a demo's var/ directory: the page, the printed login and the scheduler work.

A demo directory is made the way scripts/demo.sh leaves it (Airflow metadata migrated through
scripts/airflow_env.sh, a filled SQLite warehouse), minus the DAG run. ui.sh starts api-server,
scheduler and dag-processor on a free port; the test signs in with the password ui.sh printed,
reads the newest publication through the plugin, opens the page, waits until the health endpoint
reports the scheduler and the dag-processor alive, triggers a recsys_freshness run that must
succeed (so tasks reach the execution API on that port), and stops ui.sh with Ctrl-C (SIGINT),
which must stop all three. About 50 s.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import time
from pathlib import Path

import httpx
import pytest
from ui_seed import AS_OF, fill

from recsys_tasks.config import RecsysConfig
from recsys_tasks.data.warehouse import create_engine

REPO = Path(__file__).resolve().parents[2]
UI = REPO / "scripts" / "ui.sh"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _env(var: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "RECSYS_"))}
    env["VAR_DIR"] = str(var)
    return env


def _alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


def test_dry_run_prints_the_execution_api_url_for_the_chosen_port(tmp_path):
    out = subprocess.run([str(UI), "--dry-run", "--port", "8123"], env=_env(tmp_path), capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    assert "AIRFLOW__CORE__EXECUTION_API_SERVER_URL=http://127.0.0.1:8123/execution/" in out.stdout
    assert f"AIRFLOW_HOME={tmp_path / 'airflow'}" in out.stdout
    assert "airflow scheduler" in out.stdout and "airflow dag-processor" in out.stdout


def test_ui_script_serves_the_demo_and_stops_everything(tmp_path):
    var = tmp_path / "var"
    env = _env(var)
    migrate = subprocess.run(
        ["bash", "-c", f'REPO_ROOT="{REPO}"; source scripts/airflow_env.sh && .venv/bin/airflow db migrate'],
        env=env, cwd=REPO, capture_output=True, text=True, timeout=180,
    )
    assert migrate.returncode == 0, migrate.stdout[-2000:] + migrate.stderr[-2000:]
    cfg = RecsysConfig.from_file(REPO / "config" / "demo.yaml")
    writer = create_engine(f"sqlite:///{var / 'warehouse.db'}", output_schema=cfg.warehouse.output_schema)
    fill(writer, cfg, tmp_path / "artifacts")
    writer.dispose()

    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    log = tmp_path / "ui.out"
    with log.open("w") as out:
        ui = subprocess.Popen(
            [str(UI), "--port", str(port)], env=env, cwd=tmp_path, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
            # As in a terminal: a suite started in the background (nohup, `&`) hands its children an ignored
            # SIGINT, and bash cannot trap a signal that was ignored when it started.
            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
        )
    try:
        deadline = time.monotonic() + 120
        while "Ctrl-C stops everything" not in log.read_text():
            assert ui.poll() is None and time.monotonic() < deadline, log.read_text()[-3000:] + _tail(var)
            time.sleep(0.5)
        text = log.read_text()
        assert f"Recommendations page: {base}/plugin/recommendations" in text
        password = re.search(r"Login: +admin / (\S+)", text).group(1)
        assert password != "?" and str(var / "airflow" / "simple_auth_manager_passwords.json.generated") in text

        token = httpx.post(f"{base}/auth/token", json={"username": "admin", "password": password}, timeout=10)
        assert token.status_code == 201, token.text
        headers = {"Authorization": f"Bearer {token.json()['access_token']}"}
        publication = httpx.get(f"{base}/recsys/api/publication", headers=headers, timeout=10)
        assert publication.status_code == 200 and publication.json()["as_of"] == AS_OF.isoformat(), publication.text
        page = httpx.get(f"{base}/recsys/", cookies={"_token": token.json()["access_token"]}, timeout=10)
        assert page.status_code == 200 and "<html" in page.text.lower()

        def components_up() -> bool:
            health = httpx.get(f"{base}/api/v2/monitor/health", timeout=5).json()
            return all(health.get(c, {}).get("status") == "healthy" for c in ("scheduler", "dag_processor"))

        while not components_up():
            assert time.monotonic() < deadline, httpx.get(f"{base}/api/v2/monitor/health", timeout=5).text + _tail(var)
            time.sleep(1)

        # A triggered run executes: LocalExecutor's task process reaches the api-server on this port
        # (EXECUTION_API_SERVER_URL), reads the demo warehouse, and the run succeeds.
        while httpx.get(f"{base}/api/v2/dags/recsys_freshness", headers=headers, timeout=15).status_code != 200:
            assert time.monotonic() < deadline, "the dag-processor did not register recsys_freshness" + _tail(var)
            time.sleep(1)
        httpx.patch(f"{base}/api/v2/dags/recsys_freshness", headers=headers, json={"is_paused": False}, timeout=30).raise_for_status()
        run = httpx.post(
            f"{base}/api/v2/dags/recsys_freshness/dagRuns", headers=headers, json={"logical_date": f"{AS_OF}T07:00:00Z"}, timeout=30
        )
        assert run.status_code == 200, run.text
        run_url = f"{base}/api/v2/dags/recsys_freshness/dagRuns/{run.json()['dag_run_id']}"
        state = "queued"
        while state not in ("success", "failed"):
            assert time.monotonic() < deadline, f"the triggered run is still {state}" + _tail(var)
            time.sleep(1)
            try:  # one api-server worker also serves the task's execution API calls: it may be slow
                state = httpx.get(run_url, headers=headers, timeout=15).json()["state"]
            except httpx.TimeoutException:
                continue
        assert state == "success", _tail(var)

        ui.send_signal(signal.SIGINT)  # Ctrl-C reaches ui.sh; it must stop its three processes
        ui.wait(timeout=30)
        stop = time.monotonic() + 30
        while _alive(ui.pid) and time.monotonic() < stop:
            time.sleep(0.5)
        assert not _alive(ui.pid), "a process started by ui.sh outlived Ctrl-C"
    finally:
        if _alive(ui.pid):
            os.killpg(ui.pid, signal.SIGKILL)


def _tail(var: Path) -> str:
    return "".join(f"\n--- {f.name} ---\n{f.read_text(errors='replace')[-1500:]}" for f in sorted((var / "ui").glob("*.log")))


@pytest.fixture(autouse=True)
def _needs_the_venv():
    if not (REPO / ".venv" / "bin" / "airflow").exists():
        pytest.skip("scripts/ui.sh runs Airflow from .venv (made by scripts/demo.sh)")
