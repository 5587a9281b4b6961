"""The documentation site in a real browser: Debian's headless Chromium, driven through its chromedriver with
Selenium, opens the site built by mkdocs (served on loopback): every page of the navigation renders without a
script error, the navigation and the links in a page lead where they say, and the search finds pages, the
exit-code page's generated part included."""

from __future__ import annotations

from urllib.parse import urljoin

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support.ui import WebDriverWait

from dockyard import errors
from tests.support.docsite import build_site, serve

# Debian's chromium and chromium-driver (scripts/install.sh installs them).
CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
# How long the browser may take to do what is asked (start, run the search index): a bound on waiting, not
# an assertion on speed.
PATIENCE = 120


@pytest.fixture(scope="module")
def site_url(tmp_path_factory):
    site_dir = tmp_path_factory.mktemp("site")
    result = build_site(site_dir)
    assert result.returncode == 0, result.output
    with serve(site_dir) as url:
        yield url


@pytest.fixture(scope="module")
def browser():
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    # Root in a container: Chromium's sandbox needs user namespaces it may not get; /dev/shm may be small.
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                "--no-first-run", "--disable-extensions", "--window-size=1280,1024"):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    # The driver is Debian's, named here, so Selenium never looks for (or downloads) one.
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(PATIENCE)
    try:
        yield driver
    finally:
        driver.quit()


def script_errors(driver) -> list[str]:
    """What the page logged as errors since the last call (a failed script, a missing asset)."""
    return [entry["message"] for entry in driver.get_log("browser") if entry["level"] == "SEVERE"]


def nav_links(driver) -> dict[str, str]:
    """The sidebar's page links, title -> absolute URL."""
    links = driver.find_elements(By.CSS_SELECTOR, "nav.wy-nav-side .wy-menu-vertical a.reference.internal")
    return {link.text.strip(): link.get_attribute("href") for link in links if link.text.strip()}


def test_every_page_in_the_navigation_renders(browser, site_url):
    browser.get(site_url + "index.html")
    assert browser.title.startswith("dockyard")
    assert browser.find_element(By.CSS_SELECTOR, "div[role=main] h1").text == "dockyard"
    pages = {title: url.split("#")[0] for title, url in nav_links(browser).items()}
    assert {"Install", "Migrating from kaniko", "GitHub Actions", "Caching", "Scanning",
            "Troubleshooting by exit code"} <= set(pages)
    script_errors(browser)
    for title, url in sorted(pages.items()):
        browser.get(url)
        heading = browser.find_element(By.CSS_SELECTOR, "div[role=main] h1")
        assert heading.is_displayed() and heading.text, url
        # The theme's script ran: it marks the current page in the sidebar.
        current = browser.find_elements(By.CSS_SELECTOR, ".wy-menu-vertical li.current > a")
        assert current, f"{title}: the sidebar marks no page as current"
        assert script_errors(browser) == [], url


def test_navigation_leads_where_it_says(browser, site_url):
    browser.get(site_url + "index.html")
    sidebar = browser.find_element(By.CSS_SELECTOR, "nav.wy-nav-side")
    sidebar.find_element(By.LINK_TEXT, "Troubleshooting by exit code").click()
    WebDriverWait(browser, PATIENCE).until(lambda d: d.current_url.endswith("/exit-codes.html"))
    assert browser.find_element(By.CSS_SELECTOR, "div[role=main] h1").text.startswith("Troubleshooting by exit code")
    # A link in the generated table goes to that code's section.
    browser.find_element(By.CSS_SELECTOR, "div[role=main] table a[href='#exit-5']").click()
    WebDriverWait(browser, PATIENCE).until(lambda d: d.current_url.endswith("#exit-5"))
    section = browser.find_element(By.ID, "exit-5")
    assert section.text.startswith("5:")
    # A link in the text of a page to another page, then "Next" at the foot of it.
    browser.find_element(By.CSS_SELECTOR, "div[role=main] a[href='migrating-from-kaniko.html#the-flags']").click()
    WebDriverWait(browser, PATIENCE).until(lambda d: "/migrating-from-kaniko.html" in d.current_url)
    assert browser.find_element(By.CSS_SELECTOR, "div[role=main] h1").text.startswith("Migrating from kaniko")
    assert browser.find_element(By.ID, "the-flags").is_displayed()
    browser.find_element(By.CSS_SELECTOR, "div.rst-footer-buttons a.float-right").click()
    WebDriverWait(browser, PATIENCE).until(lambda d: d.current_url.endswith("/github-action.html"))
    assert browser.find_element(By.CSS_SELECTOR, "div[role=main] h1").text.startswith("The GitHub Action")


def search(browser, site_url, words: str) -> list[str]:
    """Type `words` into the sidebar's search box, submit, and return the result links once there are some."""
    browser.get(site_url + "index.html")
    box = browser.find_element(By.CSS_SELECTOR, "nav.wy-nav-side input[name=q]")
    box.send_keys(words, Keys.ENTER)
    WebDriverWait(browser, PATIENCE).until(lambda d: "/search.html" in d.current_url)
    results = "#mkdocs-search-results a"
    WebDriverWait(browser, PATIENCE).until(lambda d: d.find_elements(By.CSS_SELECTOR, results))
    return [link.get_attribute("href") for link in browser.find_elements(By.CSS_SELECTOR, results)]


def test_search_finds_pages(browser, site_url):
    found = search(browser, site_url, "kaniko executor")
    assert any("/migrating-from-kaniko.html" in url for url in found), found
    # A word only in the part of the exit-code page written from core/errors.py: the search index has it.
    found = search(browser, site_url, errors.SigningError.__name__)
    assert any("/exit-codes.html" in url for url in found), found
    assert script_errors(browser) == []


def test_search_results_open_their_page(browser, site_url):
    found = search(browser, site_url, "Kyverno")
    target = next(url for url in found if "/supply-chain.html" in url)
    browser.get(urljoin(site_url, target))
    assert browser.find_element(By.CSS_SELECTOR, "div[role=main] h1").text.startswith("Supply chain")
