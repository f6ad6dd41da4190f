"""The resident page in a real browser (issue 19): Debian's headless Chromium driven by Selenium against a
hub served by uvicorn on a loopback port.

The world: facility 79002 treats An (``pat-an``, high blood pressure) and Bình (``pat-binh``, diabetes)
and holds its Organization; An lets facility 79001 read her record, Bình lets 79005 read his, and each of
those facilities reads. An opens the page from the link ``fhir-hub token --portal-link`` prints and must see
her condition and 79001's access, never Bình's; withdrawing her consent on the page closes her record to
79001 at the very next request; a correction she sends lands in 79002's worklist. A screenshot of the page
is kept in ``test-artifacts/portal.png`` (git-ignored).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from fhir_hub.cli import portal_link
from fhir_hub.config import Settings
from tests.conftest import as_, token_for

CHROMIUM, CHROMEDRIVER = Path("/usr/bin/chromium"), Path("/usr/bin/chromedriver")
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
FHIR = {"Content-Type": "application/fhir+json"}
FACILITY_SYSTEM = "http://fhir.hl7.org.vn/core/sid/ma-cskcb"
ICD10 = "http://hl7.org/fhir/sid/icd-10"

pytestmark = pytest.mark.server

webdriver = pytest.importorskip("selenium.webdriver")


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[Any]:
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    if not (CHROMIUM.exists() and CHROMEDRIVER.exists()):
        message = "Debian's chromium and chromium-driver are not installed (make test installs them)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    options = Options()
    options.binary_location = str(CHROMIUM)
    for argument in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                     "--disable-background-networking", "--disable-component-update", "--disable-sync",
                     "--disable-dev-shm-usage", f"--user-data-dir={tmp_path / 'chromium'}",
                     "--window-size=412,1800"):  # a phone's width: the page is laid out mobile first
        options.add_argument(argument)
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()


def write(hub: str, headers: dict[str, str], rtype: str, rid: str, body: dict[str, Any]) -> None:
    response = httpx.put(f"{hub}/{rtype}/{rid}", json={"resourceType": rtype, "id": rid, **body},
                         headers={**FHIR, **headers})
    assert response.status_code in (200, 201), response.text


def consent_for(patient: str, facility: str) -> dict[str, Any]:
    return {"resourceType": "Consent", "status": "active",
            "scope": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/consentscope",
                                  "code": "patient-privacy"}]},
            "category": [{"coding": [{"system": "http://loinc.org", "code": "59284-0"}]}],
            "patient": {"reference": f"Patient/{patient}"},
            "policyRule": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "OPTIN"}]},
            "provision": {"type": "permit", "actor": [{
                "role": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ParticipationType",
                                     "code": "IRCP"}]},
                "reference": {"identifier": {"system": FACILITY_SYSTEM, "value": facility}}}]}}


@pytest.fixture
def world(live_server: str, settings: Settings) -> str:
    treating = as_(settings, facility="79002")
    write(live_server, treating, "Organization", "org-79002", {
        "name": "Bệnh viện Quận 2", "identifier": [{"system": FACILITY_SYSTEM, "value": "79002"}]})
    for pid, name, code, condition in (("pat-an", "An", "I10", "Tăng huyết áp"),
                                       ("pat-binh", "Bình", "E11", "Đái tháo đường type 2")):
        write(live_server, treating, "Patient", pid, {"name": [{"family": "Trần", "given": [name]}]})
        write(live_server, treating, "Condition", f"cond-{pid}", {
            "subject": {"reference": f"Patient/{pid}"}, "onsetDateTime": "2024-05-02",
            "clinicalStatus": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-clinical",
                                           "code": "active"}]},
            "code": {"text": condition, "coding": [{"system": ICD10, "code": code}]}})
    for pid, facility in (("pat-an", "79001"), ("pat-binh", "79005")):
        given = httpx.post(f"{live_server}/Consent", json=consent_for(pid, facility),
                           headers={**FHIR, **as_(settings, "resident", patient=pid)})
        assert given.status_code == 201, given.text
        read = httpx.get(f"{live_server}/Condition/cond-{pid}", headers=as_(settings, "clinician", facility=facility))
        assert read.status_code == 200, read.text
    time.sleep(0.3)  # the audit trail is written every 50 ms
    return live_server


def wait_for(check: Callable[[], bool], what: str, seconds: float = 15) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"the page never showed {what}")
        time.sleep(0.05)


def test_a_resident_sees_her_record_withdraws_a_consent_and_asks_for_a_correction(
        world: str, settings: Settings, browser: Any) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import Select

    def text_of(element_id: str) -> str:
        return str(browser.find_element(By.ID, element_id).text)

    browser.get(portal_link(world, token_for(settings, "resident", patient="pat-an")))
    wait_for(lambda: browser.find_element(By.TAG_NAME, "body").get_attribute("data-ready") == "true", "her record")
    assert "token" not in browser.current_url  # taken out of the address bar and the history
    assert browser.find_element(By.TAG_NAME, "html").get_attribute("lang") == "vi"
    assert text_of("who") == "Trần An"
    assert "Tăng huyết áp" in text_of("conditions") and "Đái tháo đường" not in text_of("conditions")
    assert "79001" in text_of("access-log") and "79005" not in text_of("access-log")
    for control in browser.find_elements(By.CSS_SELECTOR, "select, textarea"):  # every control has its label
        assert browser.find_elements(By.CSS_SELECTOR, f"label[for='{control.get_attribute('id')}']")
    landmarks = browser.find_elements(By.CSS_SELECTOR, "header, nav, main, footer")
    assert [e.tag_name for e in landmarks] == ["header", "nav", "main", "footer"]

    facility_reads = {"headers": as_(settings, "clinician", facility="79001")}
    assert httpx.get(f"{world}/Condition/cond-pat-an", **facility_reads).status_code == 200
    withdraw = browser.find_element(By.CSS_SELECTOR, "#consents button[data-consent]")
    withdraw.send_keys(Keys.ENTER)  # by keyboard
    wait_for(lambda: "Đã rút lại" in text_of("status"), "the withdrawal")
    assert httpx.get(f"{world}/Condition/cond-pat-an", **facility_reads).status_code == 404
    assert not browser.find_elements(By.CSS_SELECTOR, "#consents button[data-consent]")

    Select(browser.find_element(By.ID, "correction-record")).select_by_value("Condition/cond-pat-an")
    words = "Tôi chưa từng bị tăng huyết áp; đây là kết quả đo một lần"
    browser.find_element(By.ID, "correction-text").send_keys(words, Keys.TAB, Keys.ENTER)  # to the button, press it
    wait_for(lambda: "Đã gửi yêu cầu" in text_of("status"), "the request sent")
    assert "Bệnh viện Quận 2" in text_of("status")  # the facility that created the record
    worklist = httpx.get(f"{world}/Task", params={"owner": "Organization/org-79002", "status": "requested"},
                         headers=as_(settings, facility="79002")).json()
    assert [(e["resource"]["focus"]["reference"], e["resource"]["description"])
            for e in worklist.get("entry", [])] == [("Condition/cond-pat-an", words)]
    assert words in text_of("requests")

    ARTIFACTS.mkdir(exist_ok=True)
    browser.save_screenshot(str(ARTIFACTS / "portal.png"))

    browser.find_element(By.ID, "language").click()
    assert browser.find_element(By.TAG_NAME, "html").get_attribute("lang") == "en"
    assert text_of("summary-title") == "Health summary" and "Tăng huyết áp" in text_of("conditions")
    browser.save_screenshot(str(ARTIFACTS / "portal-en.png"))


def test_a_pasted_token_signs_in_and_nothing_is_fetched_from_elsewhere(
        world: str, settings: Settings, browser: Any) -> None:
    from selenium.webdriver.common.by import By

    browser.get(f"{world}/portal")
    for node in browser.find_elements(By.CSS_SELECTOR, "script[src], link[href], img[src]"):
        source = node.get_attribute("src") or node.get_attribute("href")
        assert source.startswith(f"{world}/portal/"), source
    assert browser.find_element(By.ID, "record").get_attribute("hidden") is not None
    browser.find_element(By.ID, "token").send_keys(token_for(settings, "resident", patient="pat-binh"))
    browser.find_element(By.CSS_SELECTOR, "#sign-in-form button").click()
    wait_for(lambda: browser.find_element(By.TAG_NAME, "body").get_attribute("data-ready") == "true", "his record")
    assert "Đái tháo đường" in browser.find_element(By.ID, "conditions").text
    assert "Tăng huyết áp" not in browser.find_element(By.ID, "conditions").text
