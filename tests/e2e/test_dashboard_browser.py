"""The dashboard in a real browser: Debian's headless Chromium, driven by Selenium.

The page is served exactly as users start it (scripts/dashboard.sh) against rows the test
seeds in the dashboard's own test keyspace; the test logs in, checks that the charts and
the table render, inserts new rows and sees them appear through the auto-refresh alone
(no reload), then saves a screenshot in test-artifacts/.

Chromium comes from apt (`scripts/install-browser.sh`, run by `make test`): a missing
browser fails this test, it never downloads one.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import shutil
import signal
import socket
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from cassandra.cluster import Session
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support import expected_conditions as ec
from selenium.webdriver.support.ui import WebDriverWait

from common.clients import cassandra_session
from common.settings import CassandraSettings, Settings
from dashboard.settings import Role
from dashboard.settings import load as load_dashboard
from tests import dashboard_seed as seed

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts"
REFRESH_SECONDS = 2
WAIT_S = 90  # page loads and refreshes on a busy 2-core machine


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def dash_cassandra(stack: Settings) -> Iterator[CassandraSettings]:
    with seed.dashboard_keyspace(stack.cassandra) as settings:
        yield settings


@pytest.fixture(scope="module")
def admin(dash_cassandra: CassandraSettings) -> Iterator[Session]:
    with cassandra_session(dash_cassandra, dash_cassandra.admin, seed.KEYSPACE) as sess:
        yield sess


@pytest.fixture(scope="module")
def dashboard_url(
    dash_cassandra: CassandraSettings, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """scripts/dashboard.sh on a free port, in a process group of its own."""
    port = _free_port()
    env = dict(
        os.environ,
        CASSANDRA_KEYSPACE=seed.KEYSPACE,
        DASHBOARD_PORT=str(port),
        DASHBOARD_REFRESH_SECONDS=str(REFRESH_SECONDS),
    )
    log_path = tmp_path_factory.mktemp("dashboard") / "dashboard.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [str(ROOT / "scripts" / "dashboard.sh")],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + WAIT_S
        while True:
            with (
                contextlib.suppress(OSError),
                urllib.request.urlopen(f"{url}/_stcore/health", timeout=5) as answer,
            ):
                if answer.status == 200:
                    break
            assert proc.poll() is None, f"dashboard exited: {log_path.read_text(errors='replace')}"
            assert time.monotonic() < deadline, f"dashboard not up: {log_path.read_text(errors='replace')}"
            time.sleep(1)
        yield url
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)


@pytest.fixture(scope="module")
def browser() -> Iterator[WebDriver]:
    chromium, driver = shutil.which("chromium"), shutil.which("chromedriver")
    assert chromium and driver, "Chromium is missing: run scripts/install-browser.sh (make test does)"
    os.environ["SE_OFFLINE"] = "true"  # Selenium Manager must not try to download a driver
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"):
        options.add_argument(arg)
    options.add_argument("--window-size=1500,3400")
    web = webdriver.Chrome(options=options, service=Service(executable_path=driver))
    try:
        yield web
    finally:
        web.quit()


def _metric(web: WebDriver, label: str) -> str:
    for element in web.find_elements(By.CSS_SELECTOR, '[data-testid="stMetric"]'):
        lines = element.text.splitlines()
        if lines and lines[0] == label:
            return lines[1] if len(lines) > 1 else ""
    return ""


def _latest_names(web: WebDriver) -> list[str]:
    """The name column of the latest-users table (the grid's accessible cells mirror its canvas)."""
    tables = web.find_elements(By.CSS_SELECTOR, '[data-testid="stDataFrame"]')
    if not tables:
        return []
    cells = tables[0].find_elements(By.CSS_SELECTOR, 'td[aria-colindex="1"]')
    return [cell.get_attribute("textContent") or "" for cell in cells]


def _new_users(now: dt.datetime) -> list[seed.LatestRow]:
    return [
        seed.LatestRow(now, "fresh-00", "Zoe Newcomer", "female", 31, "Norway", "Bergen", "NO"),
        seed.LatestRow(now, "fresh-01", "Zara Latest", "female", 27, "France", "Lyon", "FR"),
    ]


def test_login_charts_table_and_live_refresh_in_chromium(
    dashboard_url: str, browser: WebDriver, admin: Session
) -> None:
    seed.seed(admin)
    user = next(u for u in load_dashboard().users if u.role is Role.OPERATOR)
    wait = WebDriverWait(browser, WAIT_S)

    browser.get(dashboard_url)
    wait.until(ec.presence_of_element_located((By.CSS_SELECTOR, 'input[aria-label="User"]')))
    browser.find_element(By.CSS_SELECTOR, 'input[aria-label="User"]').send_keys(user.name)
    browser.find_element(By.CSS_SELECTOR, 'input[aria-label="Password"]').send_keys(
        user.password.get_secret_value()
    )
    browser.find_element(By.XPATH, "//button[.//p[text()='Log in']]").click()

    wait.until(lambda web: _metric(web, "Total users") == str(seed.TOTAL_USERS))
    assert _metric(browser, "Countries") == "5"
    assert _metric(browser, "Average age") == seed.AVERAGE_AGE
    # Every chart is drawn by Vega (a canvas or an svg inside the chart's container).
    wait.until(
        lambda web: (
            len(web.find_elements(By.CSS_SELECTOR, '[data-testid="stVegaLiteChart"] canvas'))
            + len(web.find_elements(By.CSS_SELECTOR, '[data-testid="stVegaLiteChart"] svg.marks'))
            >= 7
        )
    )
    tables = browser.find_elements(By.CSS_SELECTOR, '[data-testid="stDataFrame"]')
    assert tables and tables[0].is_displayed() and tables[0].size["height"] > 100
    assert not browser.find_elements(By.CSS_SELECTOR, '[data-testid="stException"]')
    assert not browser.find_elements(By.CSS_SELECTOR, '[data-testid="stAlertContentError"]')

    # New users arrive: the page shows them at the next refresh, without a reload.
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    seed.insert_latest(admin, _new_users(now))
    female_users, female_ages = seed.GENDERS["female"]
    admin.execute(
        "INSERT INTO gender_stats (gender, count_users, sum_age, avg_age, last_update) "
        "VALUES (%s, %s, %s, %s, %s)",
        ("female", female_users + 2, female_ages + 58, (female_ages + 58) / (female_users + 2), now),
    )
    wait.until(lambda web: _metric(web, "Total users") == str(seed.TOTAL_USERS + 2))
    expected = ["Zoe Newcomer", "Zara Latest"] + [f"Person seed {i:02d}" for i in range(8)]
    wait.until(lambda web: _latest_names(web) == expected)
    assert browser.current_url.rstrip("/") == dashboard_url  # same page: the fragment refreshed it

    ARTIFACTS.mkdir(exist_ok=True)
    shot = ARTIFACTS / "dashboard.png"
    assert browser.save_screenshot(str(shot)), "screenshot not written"
    assert shot.stat().st_size > 20_000
