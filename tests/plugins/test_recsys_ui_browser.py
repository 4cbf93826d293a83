"""The Recommendations page in the real Airflow api-server, driven by headless Chromium.

One api-server (SQLite metadata, SimpleAuthManager with a known password, this repository's
plugins folder) serves both checks: anonymous requests are refused, and a browser holding the
token of a signed-in user looks up a user and sees the published titles. A screenshot is saved
under the test's tmp_path and copied to /tmp/recsys_ui.png.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from ui_seed import ITEMS, TOP_K, fill

from recsys_tasks.config import RecsysConfig
from recsys_tasks.data.warehouse import create_engine

REPO = Path(__file__).resolve().parents[2]
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
PASSWORD = "recsys-ui-test-password"

pytestmark = pytest.mark.skipif(
    not (Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists()),
    reason="headless browser test needs chromium and chromedriver (apt-get install chromium chromium-driver; "
    "scripts/test.sh installs them when run as root)",
)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def api_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Base URL of a real ``airflow api-server`` with the recsys plugin and a filled SQLite warehouse."""
    home = tmp_path_factory.mktemp("airflow-home")
    artifacts = home / "artifacts"
    artifacts.mkdir()
    (home / "dags").mkdir()
    config_file = home / "recsys.json"
    config_file.write_text(json.dumps({"artifact_root": str(artifacts)}), encoding="utf-8")
    warehouse = home / "warehouse.db"
    cfg = RecsysConfig.from_file(config_file)
    writer = create_engine(f"sqlite:///{warehouse}", output_schema=cfg.warehouse.output_schema)
    fill(writer, cfg, artifacts)
    writer.dispose()
    (home / "passwords.json").write_text(json.dumps({"admin": PASSWORD}), encoding="utf-8")

    port = _free_port()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "RECSYS_"))},
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(home / "dags"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(REPO / "plugins"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
        "AIRFLOW__CORE__AUTH_MANAGER": "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "False",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": "admin:admin",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(home / "passwords.json"),
        "AIRFLOW__API_AUTH__JWT_SECRET": "recsys-ui-test-secret-0123456789abcdef",
        "AIRFLOW__API__BASE_URL": f"http://127.0.0.1:{port}",
        "AIRFLOW_CONN_RECSYS_WAREHOUSE": json.dumps({"conn_type": "sqlite", "host": str(warehouse)}),
        "RECSYS_CONFIG": str(config_file),
        "PYTHONPATH": str(REPO),
    }
    airflow = str(Path(sys.executable).with_name("airflow"))
    subprocess.run([airflow, "db", "migrate"], env=env, cwd=home, check=True, capture_output=True, timeout=120)
    log = (home / "api-server.log").open("w")
    server = subprocess.Popen(
        [airflow, "api-server", "--host", "127.0.0.1", "--port", str(port), "--workers", "1"],
        env=env, cwd=home, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    try:
        while True:
            if server.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"api-server did not come up:\n{(home / 'api-server.log').read_text()[-4000:]}")
            try:
                if httpx.get(f"{base}/api/v2/monitor/health", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            time.sleep(0.5)
        yield base
    finally:
        server.terminate()
        try:
            server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            server.kill()
        log.close()


def _token(base: str) -> str:
    response = httpx.post(f"{base}/auth/token", json={"username": "admin", "password": PASSWORD}, timeout=10)
    assert response.status_code == 201, response.text
    return response.json()["access_token"]


def test_anonymous_requests_are_refused(api_server: str) -> None:
    for path in ("/recsys/api/users/u1/recommendations", "/recsys/api/registry", "/recsys/api/validation"):
        response = httpx.get(api_server + path, timeout=10)
        assert response.status_code == 401, (path, response.text)
        assert "Kettle" not in response.text
    page = httpx.get(f"{api_server}/recsys/", timeout=10, follow_redirects=False)
    assert page.status_code == 307
    assert "/auth/login" in page.headers["location"]
    forged = httpx.get(f"{api_server}/recsys/api/registry", headers={"Authorization": "Bearer not-a-jwt"}, timeout=10)
    assert forged.status_code in (401, 403)


def test_signed_in_api_and_nav_entry(api_server: str) -> None:
    headers = {"Authorization": f"Bearer {_token(api_server)}"}
    body = httpx.get(f"{api_server}/recsys/api/users/u1/recommendations", headers=headers, timeout=10).json()
    assert [r["title"] for r in body["items"]] == [ITEMS[i][0] for i, _s, _r in TOP_K["u1"]]
    plugins = httpx.get(f"{api_server}/api/v2/plugins", headers=headers, timeout=10).json()["plugins"]
    views = [v for p in plugins if p["name"] == "recsys_ui" for v in p["external_views"]]
    assert views and views[0]["href"] == "/recsys/" and views[0]["url_route"] == "recommendations"


def test_user_lookup_in_headless_chromium(api_server: str, tmp_path: Path) -> None:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--disable-dev-shm-usage", "--window-size=1400,1000", f"--user-data-dir={tmp_path / 'chromium-profile'}"):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    try:
        driver.set_page_load_timeout(30)
        # Sign in the way the Airflow UI does: the JWT in the _token cookie of the api-server's origin.
        driver.get(f"{api_server}/api/v2/version")
        driver.add_cookie({"name": "_token", "value": _token(api_server), "path": "/"})
        driver.get(f"{api_server}/recsys/")
        wait = WebDriverWait(driver, 20)
        wait.until(ec.text_to_be_present_in_element((By.ID, "publication"), "as of 2026-01-05"))
        field = driver.find_element(By.ID, "user-id")
        field.send_keys("u1")
        driver.find_element(By.ID, "user-submit").click()
        wait.until(ec.presence_of_element_located((By.CSS_SELECTOR, "#user-result table")))
        rows = driver.find_elements(By.CSS_SELECTOR, "#user-result tbody tr")
        shown = [(r.get_attribute("data-item-id"), r.find_element(By.CSS_SELECTOR, "td.title").text) for r in rows]
        assert shown == [(item, ITEMS[item][0]) for item, _score, _reason in TOP_K["u1"]]
        assert "because you viewed Blue Kettle" in driver.find_element(By.ID, "user-result").text
        # The other panels rendered from their endpoints.
        wait.until(ec.presence_of_element_located((By.CSS_SELECTOR, "#metrics-chart svg polyline")))
        wait.until(ec.text_to_be_present_in_element((By.ID, "registry"), "ndcg@10 +25% over m1"))
        wait.until(ec.presence_of_element_located((By.LINK_TEXT, "Data Docs")))
        # A malformed id is refused in the page, before any request.
        field.clear()
        field.send_keys("' OR 1=1 --")
        driver.find_element(By.ID, "user-submit").click()
        assert "letters, digits" in driver.find_element(By.ID, "user-result").text
        field.clear()
        field.send_keys("u1")
        driver.find_element(By.ID, "user-submit").click()
        wait.until(ec.presence_of_element_located((By.CSS_SELECTOR, "#user-result table")))
        shot = tmp_path / "recsys_ui.png"
        assert driver.save_screenshot(str(shot))
        shutil.copy(shot, "/tmp/recsys_ui.png")
    finally:
        driver.quit()
