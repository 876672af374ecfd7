"""The web page in a real browser: `provenance serve` on a free loopback port, Debian's headless
Chromium driven by selenium. Uploads a generated-and-signed image and a plain photo, reads the
labels off the page, checks keyboard reach and phone width, and saves screenshots.

Set PROVENANCE_SCREENSHOT_DIR to keep the screenshots (they go to the test's tmp dir otherwise).
"""
from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from tests.service_helpers import plain_photo_jpeg, signed_generated_image

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")

pytestmark = pytest.mark.slow


def _skip_reason() -> str | None:
    try:
        import fastapi  # noqa: F401
        import selenium  # noqa: F401
        import uvicorn  # noqa: F401
    except ImportError as exc:
        return f"browser test needs the [serve] extra and selenium ({exc.name} missing)"
    if not (CHROMIUM and CHROMEDRIVER):
        return "browser test needs Debian's chromium and chromium-driver (apt-get install -y chromium chromium-driver)"
    return None


@pytest.fixture(scope="module")
def server(tiny_gan, keys, tmp_path_factory):
    reason = _skip_reason()
    if reason:
        print(f"SKIP: {reason}")
        pytest.skip(reason)
    from provenance.service.launch import running_server

    log = tmp_path_factory.mktemp("server") / "server.log"
    with running_server(["--trust", str(keys.root_cert), "--no-trust-store"], log, ready_within=180) as (url, _):
        yield url


@pytest.fixture(scope="module")
def browser():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1280,1000"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    yield driver
    driver.quit()


def test_page_labels_a_signed_generated_image_and_a_plain_photo(server, browser, tiny_gan, keys, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import WebDriverWait

    generated = signed_generated_image(tiny_gan, keys, tmp_path / "generated")
    photo = tmp_path / "photo.jpg"
    photo.write_bytes(plain_photo_jpeg())
    shots = Path(os.environ.get("PROVENANCE_SCREENSHOT_DIR") or tmp_path)
    shots.mkdir(parents=True, exist_ok=True)

    browser.set_window_size(1280, 1000)
    browser.get(server + "/")
    # keyboard only: Tab from the top of the page reaches the file picker
    body = browser.find_element(By.TAG_NAME, "body")
    for _ in range(6):
        body.send_keys(Keys.TAB) if _ == 0 else browser.switch_to.active_element.send_keys(Keys.TAB)
        if browser.switch_to.active_element.get_attribute("id") == "files":
            break
    assert browser.switch_to.active_element.get_attribute("id") == "files"

    browser.find_element(By.ID, "files").send_keys(f"{generated}\n{photo}")
    done = lambda d: [c.get_attribute("data-label") for c in d.find_elements(By.CSS_SELECTOR, "article.card")]  # noqa: E731
    WebDriverWait(browser, 120).until(lambda d: len(done(d)) == 2 and "pending" not in done(d))
    cards = {c.find_element(By.CSS_SELECTOR, "h2.file").text: c for c in browser.find_elements(By.CSS_SELECTOR, "article.card")}
    gen, plain = cards[generated.name], cards[photo.name]
    assert gen.get_attribute("data-label") == "synthetic"
    assert gen.find_element(By.CSS_SELECTOR, ".badge").text == "Synthetic"
    assert plain.get_attribute("data-label") == "no_evidence_of_synthesis"
    assert plain.find_element(By.CSS_SELECTOR, ".badge").text == "No evidence of synthesis"

    c2pa = gen.find_element(By.CSS_SELECTOR, ".c2pa")
    assert c2pa.is_displayed() and "test generator signer" in c2pa.text and "trusted" in c2pa.text
    assert "trainedAlgorithmicMedia" in c2pa.text
    assert "serial" in gen.find_element(By.CSS_SELECTOR, ".watermark-id").text
    assert gen.find_elements(By.CSS_SELECTOR, ".evidence tbody tr")
    assert "Heatmap of the cnn classifier over 64 tiles" in plain.find_element(By.CSS_SELECTOR, "figcaption").text
    assert plain.find_element(By.CSS_SELECTOR, "a.download").get_attribute("href").startswith("blob:")
    assert browser.find_element(By.ID, "status").text.startswith("Done:")
    resources = browser.execute_script("return performance.getEntriesByType('resource').map(e => e.name)")
    assert all(name.startswith((server, "blob:" + server, "data:")) for name in resources), resources  # no outside assets
    browser.set_window_size(1280, 2200)
    browser.save_screenshot(str(shots / "service_page.png"))

    browser.set_window_size(390, 1400)  # a phone
    assert browser.execute_script("return document.documentElement.scrollWidth <= window.innerWidth + 1")
    browser.save_screenshot(str(shots / "service_page_phone.png"))
    assert (shots / "service_page.png").stat().st_size > 10_000


def test_api_docs_render_offline(server, browser, tmp_path):
    """Swagger UI from the installed package (no CDN) renders the service's OpenAPI 3.1 document."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    browser.set_window_size(1280, 1000)
    browser.get(server + "/docs")
    WebDriverWait(browser, 60).until(lambda d: d.find_elements(By.CSS_SELECTOR, ".opblock-summary-path"))
    paths = {e.text.strip() for e in browser.find_elements(By.CSS_SELECTOR, ".opblock-summary-path")}
    assert {"/v1/check", "/v1/detectors", "/healthz", "/readyz"} <= paths
    resources = browser.execute_script("return performance.getEntriesByType('resource').map(e => e.name)")
    assert resources and all(name.startswith(server) for name in resources), resources
    browser.save_screenshot(str(Path(os.environ.get("PROVENANCE_SCREENSHOT_DIR") or tmp_path) / "service_docs.png"))
