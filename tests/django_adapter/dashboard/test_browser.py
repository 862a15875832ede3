"""The data manager's pages in a real browser: Debian's ``chromium`` driven by
Selenium through the system ``chromedriver`` (nothing is downloaded: the driver
and the browser are given by path, and Selenium Manager is told to stay offline).

One browser for the module.  The story: two sites' bundles really imported; the
data manager signs in, sees both sites with their numbers, opens the queue,
retries a refused record after its missing household arrived and discards the
other (each with a note) and sees them gone, uploads a bundle with the page's file input and reads its report;
a user who is not staff is refused.  A screenshot of each page is saved in the
test's output folder (``tmp_path/screens``); set ``BUNDLEKIT_DASHBOARD_SHOTS=DIR``
to also copy them to DIR (docs/img/dashboard-overview.png is one of them).

Without chromium/chromedriver the test skips with the reason; with ``CI=true``
it fails instead (.ci/run installs both).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from bundlekit.inbox import REJECTED
from django_adapter.models import Decision, IncomingTransaction, TxStatus
from django_adapter.workflow import WatchedInbox
from tests.django_adapter.dashboard import scenario
from tests.django_adapter.dashboard.conftest import make_user
from tests.test_app import models as m

pytestmark = [
    pytest.mark.sqlite_only,
    pytest.mark.django_db(transaction=True, databases=["default", "server"]),
]

CHROMIUM = next(filter(None, map(shutil.which, ("chromium", "chromium-browser", "google-chrome"))), None)
CHROMEDRIVER = shutil.which("chromedriver")


def _missing() -> str:
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed (pip install -e '.[test]')"
    if not CHROMIUM or not CHROMEDRIVER:
        return "the browser tests need Debian's chromium and chromium-driver packages"
    return ""


@pytest.fixture(scope="module")
def browser():
    missing = _missing()
    if missing:
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI requires the browser: {missing}")
        pytest.skip(missing)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    os.environ.setdefault("SE_OFFLINE", "true")  # Selenium Manager: never fetch anything
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                "--window-size=1280,1000", "--no-first-run", "--disable-extensions"):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
    driver.implicitly_wait(5)
    yield driver
    driver.quit()


class Pages:
    """The browser on the live server, with the few gestures the story needs."""

    def __init__(self, driver, base: str, shots: Path):
        from selenium.webdriver.common.by import By

        self.driver, self.base, self.shots, self.By = driver, base.rstrip("/"), shots, By
        shots.mkdir(parents=True, exist_ok=True)

    def open(self, path: str) -> None:
        self.driver.get(self.base + path)

    def css(self, selector: str):
        return self.driver.find_element(self.By.CSS_SELECTOR, selector)

    def all(self, selector: str):
        return self.driver.find_elements(self.By.CSS_SELECTOR, selector)

    def submit(self, button) -> None:
        """Click a form's button and wait for the next page to replace this one."""
        from selenium.common.exceptions import WebDriverException
        from selenium.webdriver.support.wait import WebDriverWait

        # A mark on this page's window, gone once another page has loaded. Not
        # ``staleness_of`` on an element: while the old document is being torn
        # down, Chromium may answer a question about its element with an
        # "inspector error" rather than "stale element", and the wait fails.
        self.driver.execute_script("window.__bundlekitOldPage = true;")
        button.click()
        WebDriverWait(self.driver, 10, ignored_exceptions=(WebDriverException,)).until(
            lambda d: d.execute_script(
                "return !window.__bundlekitOldPage && document.readyState === 'complete'"))

    def text(self, selector: str) -> str:
        return self.css(selector).text

    def shot(self, name: str, *, width: int = 1280) -> Path:
        """A screenshot of the whole page at ``width`` pixels."""
        height = self.driver.execute_script("return document.documentElement.scrollHeight")
        self.driver.set_window_size(width, max(600, min(int(height) + 40, 4000)))
        path = self.shots / f"{name}.png"
        self.driver.save_screenshot(str(path))
        self.driver.set_window_size(1280, 1000)
        copy_to = os.environ.get("BUNDLEKIT_DASHBOARD_SHOTS")
        if copy_to:
            Path(copy_to).mkdir(parents=True, exist_ok=True)
            shutil.copy(path, Path(copy_to) / f"dashboard-{name}.png")
        return path

    def unlabelled(self) -> list[str]:
        """Form controls a screen reader could not name (no <label for>, no aria-label)."""
        return self.driver.execute_script("""
            return Array.from(document.querySelectorAll('input, select, textarea'))
              .filter(e => e.type !== 'hidden')
              .filter(e => !(e.labels && e.labels.length) && !e.getAttribute('aria-label'))
              .map(e => e.outerHTML);
        """)

    def overflows_at(self, width: int) -> bool:
        """Whether the page needs sideways scrolling at ``width`` pixels (tables
        may scroll inside their own box; the page itself must not)."""
        self.driver.set_window_size(width, 800)
        try:
            return self.driver.execute_script(
                "return document.documentElement.scrollWidth > window.innerWidth + 1")
        finally:
            self.driver.set_window_size(1280, 1000)

    def sign_in(self, name: str) -> None:
        self.open("/sync/")
        assert "/sync/login/" in self.driver.current_url
        assert self.unlabelled() == []
        self.css("#id_username").send_keys(name)
        self.css("#id_password").send_keys(f"{name}-pw")
        self.submit(self.css("main form button[type=submit]"))

    def sign_out(self) -> None:
        self.submit(self.css("form.who button"))

    def count(self, site: str, outcome: str) -> int:
        return int(self.text(f'[data-site="{site}"] [data-count="{outcome}"] .n'))

    def fact(self, site: str, fact: str) -> str:
        return self.text(f'[data-site="{site}"] [data-fact="{fact}"] dd')


def test_the_data_managers_story_in_a_browser(browser, live_server, tmp_path, settings):
    field = scenario.build(tmp_path / "field")
    settings.BUNDLEKIT = field.settings
    make_user("manager", perms=("view_dashboard", "act_on_dashboard"))
    make_user("clerk", staff=False, perms=("view_dashboard",))
    pages = Pages(browser, live_server.url, tmp_path / "screens")

    # Overview: both sites, with the numbers of the import.
    pages.sign_in("manager")
    assert pages.driver.find_element(pages.By.TAG_NAME, "h1").text == "Sync overview"
    assert [c.get_attribute("data-site") for c in pages.all("[data-site]")] == ["site-a", "site-b"]
    assert (pages.count("site-a", "failed"), pages.count("site-b", "failed")) == (0, 2)
    assert pages.fact("site-a", "applied-through") == pages.fact("site-b", "applied-through") == "1"
    assert pages.fact("site-b", "gaps") == "none"
    assert "3 records applied" in pages.text('[data-site="site-a"] figcaption')
    assert "key trusted" in pages.text('[data-site="site-b"] [data-fact="key"]')
    pages.shot("overview")
    pages.shot("overview-small", width=390)
    assert not pages.overflows_at(390)

    # A site's page, from its card.
    pages.css('[data-site="site-b"] h2 a').click()
    assert pages.driver.find_element(pages.By.TAG_NAME, "h1").text.startswith("Site site-b")
    assert len(pages.all("table tbody tr")) == 1 + 2  # one bundle, two transactions
    pages.shot("site")
    assert not pages.overflows_at(390)

    # The review queue: the missing household has arrived since; retry one subject.
    m.Household.objects.using("server").create(code="B-LOST", village="Thamaga")
    pages.css('nav a[href$="/review/"]').click()
    assert pages.css("#queue-count").get_attribute("data-count") == "2"
    assert pages.unlabelled() == []
    assert not pages.overflows_at(390)
    pages.shot("review")
    first = pages.css("article.item")
    tx = first.get_attribute("data-tx")
    first.find_element(pages.By.CSS_SELECTOR, "textarea").send_keys("household B-LOST arrived on the next stick")
    pages.submit(first.find_element(pages.By.CSS_SELECTOR, 'button[value="retry"]'))
    assert "applied" in pages.text(".flash.ok")
    assert pages.css("#queue-count").get_attribute("data-count") == "1"
    assert tx not in [a.get_attribute("data-tx") for a in pages.all("article.item")]
    assert IncomingTransaction.objects.using("server").get(tx_id=tx).status == TxStatus.APPLIED

    # The other one: S-2 was entered by mistake; discard it, saying why.
    (second,) = pages.all("article.item")
    tx2 = second.get_attribute("data-tx")
    second.find_element(pages.By.CSS_SELECTOR, "textarea").send_keys("S-2 was a duplicate of S-1")
    pages.submit(second.find_element(pages.By.CSS_SELECTOR, 'button[value="discard"]'))
    assert "Resolved" in pages.text(".flash.ok")
    assert pages.css("#queue-count").get_attribute("data-count") == "0"
    assert pages.all("article.item") == []
    decision = Decision.objects.using("server").get(tx_id=tx2)
    assert (decision.who, decision.choice, decision.note) == ("manager", "discard",
                                                              "S-2 was a duplicate of S-1")

    # Rejected files: a broken file the watched inbox refused.
    inbox = field.config.inbox
    inbox.mkdir(parents=True, exist_ok=True)
    (inbox / "site-c-00000001-0badf00d.bundle").write_bytes(b"half a bundle")
    WatchedInbox(config=field.config, settle_seconds=0, truncated_grace_seconds=0).scan_once()
    assert (inbox / REJECTED / "site-c-00000001-0badf00d.bundle").exists()
    pages.css('nav a[href$="/rejected/"]').click()
    assert "site-c-00000001-0badf00d.bundle" in pages.text("table tbody")
    pages.shot("rejected")

    # Upload: site-a's next bundle, chosen with the page's file input.
    scenario.site_a_changes_more()
    nxt = scenario.seal(field.keys, field.root, "site-a")
    pages.css('nav a[href$="/upload/"]').click()
    assert pages.unlabelled() == []
    pages.css("#id_bundles").send_keys(str(nxt))
    pages.submit(pages.css("#upload-form button[type=submit]"))
    report = pages.css("section.report")
    assert report.get_attribute("data-status") == "applied"
    assert "seq 2" in report.text and "applied 2" in report.text
    pages.shot("upload")
    pages.open("/sync/")
    assert pages.fact("site-a", "applied-through") == "2"

    # Someone who is not staff is refused, even with the permission.
    pages.sign_out()
    pages.sign_in("clerk")
    assert "not staff" in pages.text("main")
    pages.shot("refused")
