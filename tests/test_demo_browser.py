"""The demo page in a real browser: headless Chromium (Debian's ``chromium`` and ``chromium-driver``) driven by
selenium types two sentences, clicks Interpolate and finds the path in the table and on the map. Skipped, with the
reason, where selenium, Chromium or chromedriver is missing."""

import json
import shutil

import pytest

from textvae.demo import DemoApp, LatentMap, serving

from .conftest import SENTENCES

webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed (pip install -e '.[dev]')")
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

BROWSER = next((path for name in ("chromium", "chromium-browser", "google-chrome") if (path := shutil.which(name))), None)
DRIVER = shutil.which("chromedriver")
pytestmark = pytest.mark.skipif(
    BROWSER is None or DRIVER is None,
    reason="no headless browser: needs chromium and chromedriver on PATH "
    "(apt-get install -y chromium chromium-driver)",
)
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-dev-shm-usage", "--window-size=1200,1000")


@pytest.fixture
def browser(tmp_path):
    options = webdriver.ChromeOptions()
    options.binary_location = BROWSER
    for flag in FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={tmp_path / 'profile'}")  # a fresh profile each time
    driver = webdriver.Chrome(service=Service(DRIVER), options=options)
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()


def test_typing_two_sentences_and_clicking_shows_the_path(browser, sharp_model):
    app = DemoApp(sharp_model, latent_map=LatentMap.build(sharp_model, SENTENCES, "test sentences"))
    a, b = SENTENCES[0], SENTENCES[3]
    _, expected = app.handle("POST", "/api/interpolate", json.dumps({"a": a, "b": b, "steps": 5}).encode())
    wait = WebDriverWait(browser, 30)
    with serving(app) as server:
        browser.get(server.url)
        wait.until(lambda d: "sentence_vae" in d.find_element(By.ID, "model-info").text)
        for field, text in (("sentence-a", a), ("sentence-b", b)):
            box = browser.find_element(By.ID, field)
            box.clear()
            box.send_keys(text)
        steps = browser.find_element(By.NAME, "steps")
        steps.clear()
        steps.send_keys("5")
        browser.find_element(By.ID, "interpolate-button").click()
        rows = wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#path-table tbody tr"))
        cells = [row.find_elements(By.TAG_NAME, "td") for row in rows]
        assert [c[2].text for c in cells] == expected["path"]
        marks = [c[3].text for c in cells]
        assert marks[0] == "start" and marks[-1] == "end"
        assert marks[1:-1] == ["changed" if x else "same" for x in expected["changed"][1:-1]]
        assert browser.find_element(By.ID, "step-sentence").text == expected["path"][0]
        assert "distinct sentences" in browser.find_element(By.ID, "path-metrics").text

        browser.find_element(By.CSS_SELECTOR, "#tabs button[data-tab=map]").click()
        points = wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#map circle.point"))
        assert len(points) == len(SENTENCES)
        assert len(browser.find_elements(By.CSS_SELECTOR, "#map circle.step")) == 5
        assert browser.find_elements(By.CSS_SELECTOR, "#map polyline.path")

        browser.find_element(By.CSS_SELECTOR, "#tabs button[data-tab=interpolate]").click()
        box = browser.find_element(By.ID, "sentence-a")
        box.clear()
        box.send_keys("   ")  # passes the browser's `required`, not the server's check
        browser.find_element(By.ID, "interpolate-button").click()
        status = browser.find_element(By.ID, "interpolate-status")
        wait.until(lambda d: "error" in status.get_attribute("class"))
        assert "'a' is empty" in status.text
        assert not browser.find_element(By.CSS_SELECTOR, "#tabs button[data-tab=respond]").is_displayed()
