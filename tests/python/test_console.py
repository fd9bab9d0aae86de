"""The web console in a real browser: Debian's headless Chromium driven over WebDriver
(Selenium with Debian's chromedriver; the test command installs both).

Keyed records with headers go in through confluent-kafka; the console's overview, topic list
and topic page must then show the exact partition count and offsets. A screenshot of each page
is saved under target/console-screenshots/ as a test artifact.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from conftest import free_port
from kafkautil import admin, create_topic, produce_all, producer

CHROMIUM = shutil.which("chromium")
CHROMEDRIVER = shutil.which("chromedriver")
SCREENSHOTS = Path(__file__).resolve().parents[2] / "target" / "console-screenshots"


@pytest.fixture
def browser():
    if not (CHROMIUM and CHROMEDRIVER):
        pytest.fail("chromium and chromedriver are missing: apt-get install chromium chromium-driver "
                    "(the README's test command does)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    # As root in a container, offline: no sandbox, and nothing that phones home.
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--no-first-run", "--window-size=1280,900"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()


def rows(driver, table_id: str) -> list[list[str]]:
    from selenium.webdriver.common.by import By

    table = driver.find_element(By.ID, table_id)
    out = []
    for tr in table.find_elements(By.TAG_NAME, "tr")[1:]:
        out.append([td.text for td in tr.find_elements(By.TAG_NAME, "td")])
    return out


def shot(driver, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    assert driver.save_screenshot(str(SCREENSHOTS / f"{name}.png"))


def test_console_shows_the_cluster_topics_and_exact_offsets(make_broker, browser):
    from selenium.webdriver.common.by import By

    port = free_port()
    broker = make_broker(admin_listeners=f"http://127.0.0.1:{port}")
    console = f"http://127.0.0.1:{port}"
    create_topic(admin(broker.bootstrap), "orders", 3)
    # 5, 3 and 0 records in partitions 0, 1, 2, keyed and with headers.
    messages = [
        {"partition": p, "key": f"k{p}-{i}".encode(), "value": f"v{i}".encode(),
         "headers": [("source", b"console-test")]}
        for p, count in ((0, 5), (1, 3)) for i in range(count)
    ]
    reports = produce_all(producer(broker.bootstrap), "orders", messages)
    assert sorted((r.partition, r.offset) for r in reports) == [(0, i) for i in range(5)] + [(1, i) for i in range(3)]

    browser.get(console + "/")
    assert browser.title == "Cluster · Vltava"
    counts = {card: browser.find_element(By.ID, card).text.split("\n")[0]
              for card in ("brokers-count", "topics-count", "partitions-count",
                           "under-replicated-count", "offline-count")}
    assert counts == {"brokers-count": "1", "topics-count": "1", "partitions-count": "3",
                      "under-replicated-count": "0", "offline-count": "0"}
    assert rows(browser, "brokers") == [["1", broker.bootstrap, "—", "running · controller"]]
    shot(browser, "overview")

    browser.find_element(By.LINK_TEXT, "Topics").click()
    assert browser.title == "Topics · Vltava"
    assert rows(browser, "topics") == [["orders", "3", "1", "0"]]
    shot(browser, "topics")

    browser.find_element(By.LINK_TEXT, "orders").click()
    assert browser.title == "orders · Vltava"
    partitions = rows(browser, "partitions")
    # Partition, leader, replicas, ISR, log start, high watermark, log end; sizes are positive.
    assert [r[:7] for r in partitions] == [
        ["0", "1", "1", "1", "0", "5", "5"],
        ["1", "1", "1", "1", "0", "3", "3"],
        ["2", "1", "1", "1", "0", "0", "0"],
    ]
    sizes = [int(r[7]) for r in partitions]
    assert sizes[0] > sizes[1] > 0 and sizes[2] == 0
    shot(browser, "topic")

    browser.get(console + "/topics/missing")
    assert browser.title == "No such topic · Vltava"
    assert "There is no topic missing." in browser.find_element(By.TAG_NAME, "main").text
