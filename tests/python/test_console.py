"""The web console in a real browser: Debian's headless Chromium driven over WebDriver
(Selenium with Debian's chromedriver; the test command installs both).

Keyed records with headers go in through confluent-kafka; the console's overview, topic list
and topic page must then show the exact partition count and offsets, the message browser the
exact keys, values and headers, a group page the exact lag. The write actions are driven through
their forms and confirmation steps, and a Kafka client must see what they did. A screenshot of
each page is saved under target/console-screenshots/ as a test artifact.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from conftest import free_port
from confluent_kafka import Consumer, TopicPartition

from kafkautil import COMMON, admin, consume_exact, create_topic, produce_all, producer

CHROMIUM = shutil.which("chromium")
CHROMEDRIVER = shutil.which("chromedriver")
SCREENSHOTS = Path(__file__).resolve().parents[2] / "target" / "console-screenshots"


@pytest.fixture
def browser(request):
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
    request.node._vltava_browser = driver
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

    follow(browser, browser.find_element(By.LINK_TEXT, "Topics"))
    assert browser.title == "Topics · Vltava"
    assert rows(browser, "topics") == [["orders", "3", "1", "0"]]
    shot(browser, "topics")

    follow(browser, browser.find_element(By.LINK_TEXT, "orders"))
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


def follow(driver, element) -> None:
    """Click a link or submit button and wait until the next page has replaced this one
    (a click returns before the navigation it starts has finished).

    The old page is recognised by a mark set on its window, which a navigation discards;
    asking about an element of the old page instead races the navigation, and Chrome then
    answers with an inspector error rather than "stale element". While the next page is
    loading, the driver may fail a script call; the wait retries those until its deadline."""
    from selenium.common.exceptions import WebDriverException
    from selenium.webdriver.support.ui import WebDriverWait

    driver.execute_script("window.vltavaOldPage = true;")
    element.click()
    WebDriverWait(driver, 30, ignored_exceptions=(WebDriverException,)).until(
        lambda d: d.execute_script(
            "return window.vltavaOldPage === undefined && document.readyState === 'complete'"))


def submit(driver, button_id: str) -> None:
    from selenium.webdriver.common.by import By

    follow(driver, driver.find_element(By.ID, button_id))


def fill(driver, name: str, text: str) -> None:
    from selenium.webdriver.common.by import By

    field = driver.find_element(By.NAME, name)
    field.clear()
    field.send_keys(text)


def choose(driver, name: str, value: str) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    Select(driver.find_element(By.NAME, name)).select_by_value(value)


def commit(bootstrap: str, group: str, offsets: dict[tuple[str, int], int]) -> None:
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False, **COMMON})
    try:
        c.commit(offsets=[TopicPartition(t, p, o) for (t, p), o in offsets.items()], asynchronous=False)
    finally:
        c.close()


def test_console_browses_messages_shows_lag_and_writes_through_confirmations(make_broker, browser):
    from selenium.webdriver.common.by import By

    port = free_port()
    broker = make_broker(admin_listeners=f"http://127.0.0.1:{port}")
    console = f"http://127.0.0.1:{port}"
    create_topic(admin(broker.bootstrap), "orders", 2)
    messages = [
        {"partition": p, "key": f"k{p}-{i}".encode(), "value": f'{{"n": {i}}}'.encode(),
         "headers": [("source", b"console-test"), ("seq", str(i).encode())]}
        for p, count in ((0, 5), (1, 3)) for i in range(count)
    ]
    produce_all(producer(broker.bootstrap), "orders", messages)

    # The message browser: partition 0 from the beginning, exact keys, values and headers.
    browser.get(console + "/topics/orders")
    follow(browser, browser.find_element(By.ID, "browse"))
    fill(browser, "partition", "0")
    choose(browser, "from", "beginning")
    submit(browser, "show")
    assert browser.title == "Messages of orders · Vltava"
    shown = [[r[0], r[2], r[3], r[4]] for r in rows(browser, "messages")]
    assert shown == [[str(i), f"k0-{i}", f'{{"n": {i}}}', f"source: console-test\nseq: {i}"] for i in range(5)]
    shot(browser, "messages")
    # Pretty JSON and a search.
    choose(browser, "format", "json")
    fill(browser, "search", "K0-3")
    submit(browser, "show")
    found = rows(browser, "messages")
    assert [(r[0], r[3]) for r in found] == [("3", '{\n  "n": 3\n}')]
    assert "for K0-3: 1 found." in browser.find_element(By.ID, "range").text
    shot(browser, "messages-search")

    # A group that committed 2 of partition 0's 5 records and 1 of partition 1's 3: lag 3 + 2.
    commit(broker.bootstrap, "billing", {("orders", 0): 2, ("orders", 1): 1})
    follow(browser, browser.find_element(By.LINK_TEXT, "Consumer groups"))
    assert rows(browser, "groups") == [["billing", "classic", "Empty", "0", "", "5"]]
    shot(browser, "groups")
    follow(browser, browser.find_element(By.LINK_TEXT, "billing"))
    assert browser.find_element(By.ID, "total-lag").text.split("\n")[0] == "5"
    assert rows(browser, "offsets") == [["orders", "0", "2", "5", "3", ""], ["orders", "1", "1", "3", "2", ""]]
    shot(browser, "group")
    # Reset to the earliest offsets: the dry run changes nothing, the confirmation does.
    choose(browser, "to", "earliest")
    submit(browser, "reset")
    assert rows(browser, "plan") == [["orders", "0", "2", "0"], ["orders", "1", "1", "0"]]
    shot(browser, "reset-dry-run")
    c = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": "billing", **COMMON})
    still = c.committed([TopicPartition("orders", 0), TopicPartition("orders", 1)], timeout=10)
    assert [tp.offset for tp in still] == [2, 1], "the dry run committed nothing"
    submit(browser, "confirm")
    assert rows(browser, "offsets") == [["orders", "0", "0", "5", "5", ""], ["orders", "1", "0", "3", "3", ""]]
    now = c.committed([TopicPartition("orders", 0), TopicPartition("orders", 1)], timeout=10)
    assert [tp.offset for tp in now] == [0, 0]
    c.close()

    # Create a topic from the form: checked, confirmed, then seen by a Kafka client.
    browser.get(console + "/topics")
    follow(browser, browser.find_element(By.ID, "create-topic"))
    fill(browser, "name", "made-in-console")
    fill(browser, "partitions", "4")
    fill(browser, "configs", "retention.ms=3600000")
    submit(browser, "create")
    assert "4 partitions, replication factor the broker's default.replication.factor" in \
        browser.find_element(By.ID, "plan").text
    assert "made-in-console" not in admin(broker.bootstrap).list_topics(timeout=10).topics
    shot(browser, "create-topic")
    submit(browser, "confirm")
    assert browser.title == "made-in-console · Vltava"
    configs = {r[0]: (r[1], r[2]) for r in rows(browser, "configs")}
    assert configs["retention.ms"] == ("3600000", "DYNAMIC_TOPIC_CONFIG")
    assert configs["cleanup.policy"] == ("delete", "DEFAULT_CONFIG")
    listed = admin(broker.bootstrap).list_topics(timeout=10).topics
    assert len(listed["made-in-console"].partitions) == 4

    # Produce from the form; a Kafka consumer reads exactly that record.
    follow(browser, browser.find_element(By.ID, "produce"))
    fill(browser, "partition", "2")
    fill(browser, "key", "form-key")
    fill(browser, "value", "line one\nline two")
    fill(browser, "headers", "origin: console\ntrace: abc:1")
    submit(browser, "produce")
    shot(browser, "produce-confirm")
    submit(browser, "confirm")
    assert browser.find_element(By.ID, "produced").text == "Written to partition 2 at offset 0."
    got = consume_exact(broker.bootstrap, [TopicPartition("made-in-console", 2, 0)], 1)
    assert (got[0].key, got[0].value, got[0].headers) == \
        (b"form-key", b"line one\nline two", (("origin", b"console"), ("trace", b"abc:1")))
    follow(browser, browser.find_element(By.ID, "browse-written"))
    assert [[r[0], r[2], r[3]] for r in rows(browser, "messages")] == [["0", "form-key", "line one\nline two"]]

    # Add partitions, then delete the topic: each only after its confirmation.
    browser.get(console + "/topics/made-in-console")
    fill(browser, "count", "6")
    submit(browser, "add-partitions")
    submit(browser, "confirm")
    assert len(rows(browser, "partitions")) == 6
    submit(browser, "delete-topic")
    fill(browser, "typed", "made-in-console")
    shot(browser, "delete-topic")
    submit(browser, "confirm")
    assert browser.title == "Topics · Vltava"
    assert [r[0] for r in rows(browser, "topics")] == ["__consumer_offsets", "orders"]
    assert "made-in-console" not in admin(broker.bootstrap).list_topics(timeout=10).topics


def test_a_read_only_console_offers_no_write(make_broker, browser):
    from selenium.webdriver.common.by import By

    port = free_port()
    broker = make_broker(admin_listeners=f"http://127.0.0.1:{port}",
                         overrides={"admin.console.read.only": "true"})
    create_topic(admin(broker.bootstrap), "orders", 1)
    browser.get(f"http://127.0.0.1:{port}/topics/orders")
    assert browser.find_elements(By.TAG_NAME, "form") == []
    assert browser.find_elements(By.ID, "produce") == []
    assert browser.find_element(By.ID, "browse").text == "Browse messages"
    shot(browser, "read-only-topic")
