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
from typing import Any

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


@pytest.fixture
def browser(api_server: str, tmp_path: Path) -> Iterator[Any]:
    """Headless Chromium signed in to the api-server (the JWT in the _token cookie, as the Airflow UI keeps it)."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--disable-dev-shm-usage", "--window-size=1400,1000", f"--user-data-dir={tmp_path / 'chromium-profile'}"):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    try:
        driver.set_page_load_timeout(30)
        driver.get(f"{api_server}/api/v2/version")
        driver.add_cookie({"name": "_token", "value": _token(api_server), "path": "/"})
        yield driver
    finally:
        driver.quit()


def _shot(driver: Any, tmp_path: Path, name: str) -> None:
    shot = tmp_path / name
    assert driver.save_screenshot(str(shot))
    shutil.copy(shot, f"/tmp/{name}")


def test_user_lookup_in_headless_chromium(api_server: str, browser: Any, tmp_path: Path) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import Select, WebDriverWait

    driver, wait = browser, WebDriverWait(browser, 20)
    driver.get(f"{api_server}/recsys/")
    wait.until(ec.text_to_be_present_in_element((By.ID, "publication"), "as of 2026-01-05"))
    driver.find_element(By.ID, "user-id").send_keys("u1")
    driver.find_element(By.ID, "user-submit").click()
    # A lookup is a navigation: the address carries it and can be shared.
    wait.until(ec.url_contains("?user=u1"))
    wait.until(ec.presence_of_element_located((By.CSS_SELECTOR, "#user-result table")))
    rows = driver.find_elements(By.CSS_SELECTOR, "#user-result tbody tr")
    shown = [(r.get_attribute("data-item-id"), r.find_element(By.CSS_SELECTOR, "td.title").text) for r in rows]
    assert shown == [(item, ITEMS[item][0]) for item, _score, _reason in TOP_K["u1"]]
    result = driver.find_element(By.ID, "user-result").text
    assert "because you viewed Blue Kettle" in result and "model score" in result and "trending count" not in result
    # The user's events before the cutoff beside them, newest first; the purchase after it is not there.
    wait.until(ec.presence_of_element_located((By.CSS_SELECTOR, "#user-events table")))
    kinds = [td.text for td in driver.find_elements(By.CSS_SELECTOR, "#user-events td.event-type")]
    assert kinds == ["add_to_cart", "view", "search"]
    assert "“kettle”" in driver.find_element(By.ID, "user-events").text
    _shot(driver, tmp_path, "recsys_ui.png")

    # An older publication through the as-of picker.
    Select(driver.find_element(By.ID, "as-of")).select_by_value("2026-01-04")
    wait.until(ec.url_contains("as_of=2026-01-04"))
    wait.until(ec.text_to_be_present_in_element((By.ID, "user-result"), "as of 2026-01-04"))
    assert [r.get_attribute("data-item-id") for r in driver.find_elements(By.CSS_SELECTOR, "#user-result tbody tr")] == ["i1"]

    # A cold-start list says its scores are trending counts, not logits.
    driver.get(f"{api_server}/recsys/?user=u3")
    wait.until(ec.presence_of_element_located((By.CSS_SELECTOR, "#user-result table")))
    assert "trending count" in driver.find_element(By.ID, "user-result").text
    assert "new-item slot" in driver.find_element(By.ID, "user-result").text

    # Items are links to their lookup.
    driver.find_element(By.CSS_SELECTOR, "#user-result a.item-link[data-item='i3']").click()
    wait.until(ec.url_contains("item=i3"))
    wait.until(ec.text_to_be_present_in_element((By.ID, "item-result"), "Garden Hose"))
    assert driver.find_element(By.ID, "user-id").get_attribute("value") == "u3"  # the rest of the state stays

    # A malformed id is refused in the page, before any request or navigation.
    field = driver.find_element(By.ID, "user-id")
    field.clear()
    field.send_keys("' OR 1=1 --")
    driver.find_element(By.ID, "user-submit").click()
    assert "letters, digits" in driver.find_element(By.ID, "user-result").text
    assert "user=u3" in driver.current_url


def test_registry_chart_and_validation_in_headless_chromium(api_server: str, browser: Any, tmp_path: Path) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import Select, WebDriverWait

    driver, wait = browser, WebDriverWait(browser, 20)
    driver.get(f"{api_server}/recsys/")
    wait.until(ec.text_to_be_present_in_element((By.ID, "registry"), "ndcg@10 +25% over m1"))
    # Newest as-of first (the backfilled m0, registered last, is last); each row links into Airflow.
    versions = [r.get_attribute("data-version") for r in driver.find_elements(By.CSS_SELECTOR, "#registry tbody tr")]
    assert versions == ["m3", "m2", "m1", "m0"]
    links = {a.text: a.get_attribute("href") for a in driver.find_elements(By.CSS_SELECTOR, "#registry tr[data-version='m3'] a")}
    assert links == {
        "run": f"{api_server}/dags/recsys_retrain/runs/r3",
        "train log": f"{api_server}/dags/recsys_retrain/runs/r3/tasks/train",
        "evaluate log": f"{api_server}/dags/recsys_retrain/runs/r3/tasks/evaluate",
    }
    m3 = driver.find_element(By.CSS_SELECTOR, "#registry tr[data-version='m3']").text
    assert "m2 (champion, 0.2600, n=50)" in m3 and "-0.0200 (-7.7%" in m3
    # A long decision is one line until opened.
    details = driver.find_element(By.CSS_SELECTOR, "#registry tr[data-version='m0'] details")
    assert details.get_attribute("open") is None
    details.find_element(By.TAG_NAME, "summary").click()
    assert details.get_attribute("open") is not None

    # The chart: the first model is the champion after its run (it was promoted), m3 the one challenger not promoted.
    wait.until(ec.presence_of_element_located((By.CSS_SELECTOR, "#metrics-chart svg polyline")))
    roles = [c.get_attribute("data-role") for c in driver.find_elements(By.CSS_SELECTOR, "#metrics-chart circle")]
    assert roles.count("champion") == 3 and roles.count("challenger") == 1 and roles.count("baseline") == 3
    titles = [t.get_attribute("textContent") for t in driver.find_elements(By.CSS_SELECTOR, "#metrics-chart circle title")]
    assert any(t.startswith("champion (promoted m1) m1 · as of 2026-01-04") and "(n=50 users)" in t for t in titles)
    assert "all holdout users" in driver.find_element(By.ID, "metric-name").text
    ticks = [t.get_attribute("textContent") for t in driver.find_elements(By.CSS_SELECTOR, "#metrics-chart text.x-tick")]
    assert ticks == ["2026-01-04", "2026-01-05"]
    # One date is one label (the page's own chart function, on one day's points).
    one_day = driver.execute_script(
        "const svg = chart({metric: 'ndcg@10', points: [{as_of: '2026-02-01', run_id: 'r', role: 'challenger', "
        "model_version: 'm', value: 0.2, users: 9, promoted: true}]})[0];"
        "return [...svg.querySelectorAll('text.x-tick')].map(t => t.textContent);"
    )
    assert one_day == ["2026-02-01"]
    Select(driver.find_element(By.ID, "segment-select")).select_by_value("new_users")
    wait.until(ec.url_contains("segment=new_users"))
    wait.until(ec.text_to_be_present_in_element((By.ID, "metric-name"), "new_users"))
    assert "n=3" in driver.find_element(By.ID, "metric-name").text

    # Validation: counts per suite that match Data Docs, readable observed values, older runs.
    wait.until(ec.presence_of_element_located((By.LINK_TEXT, "Data Docs")))
    counts = driver.find_element(By.CSS_SELECTOR, "#validation .suite-counts").text
    assert "events: 3 checks, 1 failed, 2 evaluated by Great Expectations" in counts
    _shot(driver, tmp_path, "recsys_ui_panels.png")
    Select(driver.find_element(By.ID, "run-select")).select_by_value("r1")
    wait.until(ec.url_contains("run=r1"))
    wait.until(ec.text_to_be_present_in_element((By.ID, "validation"), "unexpected count: 0"))
    cells = [td.text for td in driver.find_elements(By.CSS_SELECTOR, "#validation td.observed-cell")]
    assert cells and not any("{" in c for c in cells)
    assert "element count: 7" in cells[0] and "examples: none" in cells[0]

    # Data Docs render with their scripts served by the app (the test machine has no internet either).
    driver.get(f"{api_server}/recsys/datadocs/recsys_retrain/2026-01-05/r2/data_docs/index.html")
    wait.until(ec.text_to_be_present_in_element((By.ID, "jq"), "function function"))


def test_nav_entry_opens_a_shared_lookup(api_server: str, browser: Any, tmp_path: Path) -> None:
    """/plugin/recommendations?user=u1 in the Airflow UI reaches the page, and the address keeps the lookup."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    driver, wait = browser, WebDriverWait(browser, 30)
    driver.get(f"{api_server}/plugin/recommendations?user=u1")
    wait.until(ec.frame_to_be_available_and_switch_to_it((By.CSS_SELECTOR, "iframe[title='Recommendations']")))
    wait.until(ec.presence_of_element_located((By.CSS_SELECTOR, "#user-result table")))
    assert "Blue Kettle" in driver.find_element(By.ID, "user-events").text
    driver.switch_to.default_content()
    wait.until(ec.url_contains("/plugin/recommendations/recsys/?user=u1"))
    _shot(driver, tmp_path, "recsys_ui_nav.png")
    # That address, opened anew, shows the same lookup.
    driver.get(driver.current_url)
    wait.until(ec.frame_to_be_available_and_switch_to_it((By.CSS_SELECTOR, "iframe[title='Recommendations']")))
    wait.until(ec.text_to_be_present_in_element((By.ID, "user-result"), "items for u1"))
