"""A real headless Chromium against the live server: sign in, submit the form, watch the job finish, and
check that the page's <audio> element loaded a playable file. The worker is the real task function,
run in the test thread once the job is queued (the in-memory test database is shared with the server
thread, so a separate qcluster process could not see it).

Set BARK_SCREENSHOT_DIR to also write the README's screenshots (docs/job-page.png,
docs/admin-dashboard.png and docs/admin-jobs.png) from the same harness:  BARK_SCREENSHOT_DIR=docs pytest -m browser
"""

import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.urls import reverse
from django_q.models import OrmQ
from selenium import webdriver
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support import expected_conditions as ec
from selenium.webdriver.support.ui import Select, WebDriverWait

from synthesis.jobs.submit import JobRequest, submit_job
from synthesis.models import ApiKey, Job
from synthesis.tasks import run_job_task
from tests.fixtures_web import PASSWORD, finish, make_job

pytestmark = pytest.mark.browser

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
FLAGS = (
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--window-size=1280,900",
    # Headless Chromium has no speakers; a muted fake output still decodes and plays media.
    "--autoplay-policy=no-user-gesture-required",
)
# Loads the page's audio afresh and reports what the media element made of it.
LOAD_AUDIO_JS = """
const done = arguments[arguments.length - 1];
const audio = document.querySelector("audio");
const report = () => done({readyState: audio.readyState, duration: audio.duration,
                           error: audio.error && audio.error.code, src: audio.currentSrc});
audio.addEventListener("canplay", report, {once: true});
audio.addEventListener("error", report, {once: true});
audio.load();
"""


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[WebDriver]:
    missing = [str(path) for path in (CHROMIUM, CHROMEDRIVER) if not path.exists()]
    if missing:
        reason = "apt-get install chromium chromium-driver (.ci/run does)"
        pytest.skip(f"needs Debian's chromium and chromium-driver ({', '.join(missing)} missing): {reason}")
    options = Options()
    options.binary_location = str(CHROMIUM)
    for flag in (*FLAGS, f"--user-data-dir={tmp_path / 'chromium-profile'}"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    driver.set_script_timeout(15)
    yield driver
    driver.quit()


@pytest.fixture
def person(transactional_db, django_user_model):
    return django_user_model.objects.create_user("ada", password=PASSWORD, is_staff=True, is_superuser=True)


def sign_in(browser: WebDriver, base_url: str) -> None:
    browser.get(base_url + reverse("login"))
    browser.find_element(By.ID, "id_username").send_keys("ada")
    browser.find_element(By.ID, "id_password").send_keys(PASSWORD)
    browser.find_element(By.CSS_SELECTOR, "button[type=submit].primary").click()
    WebDriverWait(browser, 10).until(ec.presence_of_element_located((By.ID, "id_prompt")))


def screenshot(browser: WebDriver, path: Path, width: int = 1280, height: int = 900) -> None:
    """A `width` x `height` viewport, grown to the page's full height when it is taller."""
    metrics = {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": width < 600}
    browser.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", metrics)
    full = browser.execute_script("return document.documentElement.scrollHeight")
    browser.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", {**metrics, "height": max(height, full)})
    browser.save_screenshot(str(path))


def wait_until_queued(timeout: float = 10) -> Job:
    """The job the form just submitted, once it is queued and handed to the broker."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = Job.objects.filter(status=Job.Status.QUEUED).first()
        if job is not None and OrmQ.objects.exists():
            return job
        time.sleep(0.1)
    raise AssertionError("the form did not queue a job")


def test_a_person_signs_in_submits_text_and_hears_the_finished_job(browser, live_server, person, tmp_path):
    sign_in(browser, live_server.url)
    text = "Hello from the browser test. The job page should play this."
    prompt = browser.find_element(By.ID, "id_prompt")
    prompt.send_keys(text)
    assert browser.find_element(By.CSS_SELECTOR, "#prompt-count [data-count]").text == str(len(text))
    Select(browser.find_element(By.ID, "id_engine")).select_by_value("piper")
    browser.find_element(By.CSS_SELECTOR, "button[name=submit]").click()

    job = wait_until_queued()
    WebDriverWait(browser, 10).until(ec.url_contains(reverse("job-detail", args=[job.pk])))
    assert browser.find_element(By.CSS_SELECTOR, "[data-job-label]").text == "Queued"
    run_job_task(str(job.id))
    # The page polls status.json and reloads itself once the job is done.
    WebDriverWait(browser, 15).until(ec.presence_of_element_located((By.CSS_SELECTOR, "audio")))

    audio = browser.execute_async_script(LOAD_AUDIO_JS)
    job.refresh_from_db()
    assert job.status == Job.Status.COMPLETED and job.owner == person
    assert browser.find_element(By.CSS_SELECTOR, "[data-job-label]").text == "Completed"
    assert audio["error"] is None and audio["readyState"] >= 2, audio
    assert audio["src"].endswith(reverse("job-file", args=[job.pk, "audio"]))
    assert audio["duration"] == pytest.approx(job.duration_s, abs=0.05)
    browser.save_screenshot(str(tmp_path / "job-page.png"))
    assert (tmp_path / "job-page.png").stat().st_size > 10_000


def visible_voices(browser: WebDriver) -> set[str]:
    return set(
        browser.execute_script(
            "return [...document.querySelectorAll('#id_voice option')].filter(o => !o.hidden).map(o => o.value)"
        )
    )


def test_the_voice_list_follows_the_engine_and_a_seeded_piper_run_says_it_ignores_temperatures(
    browser, live_server, person, tiny_bark, settings
):
    settings.BARK_DEFAULT_ENGINE = "piper"
    sign_in(browser, live_server.url)
    engine = Select(browser.find_element(By.ID, "id_engine"))
    note = browser.find_element(By.CSS_SELECTOR, "[data-temperature-ignored]")

    automatic = visible_voices(browser)  # Automatic picks Piper here
    engine.select_by_value("bark")
    bark = visible_voices(browser)
    engine.select_by_value("piper")
    browser.find_element(By.ID, "id_seed").send_keys("7")

    assert automatic == {"", "piper/en_US-joe-medium"}
    assert "v2/ja_speaker_3" in bark and "piper/en_US-joe-medium" not in bark and len(bark) == 131
    assert visible_voices(browser) == automatic and note.is_displayed()
    engine.select_by_value("bark")
    assert not note.is_displayed()


def test_the_admin_lists_fit_a_1280_px_screen(browser, live_server, person):
    for index in range(3):
        finish(make_job(person, prompt=f"A fairly long text for the list, number {index}, to see that it wraps. " * 3))
    ApiKey.objects.create_key(name="a podcast robot with a long name", rate_limit_per_min=120)
    sign_in(browser, live_server.url)
    browser.execute_cdp_cmd(
        "Emulation.setDeviceMetricsOverride", {"width": 1280, "height": 900, "deviceScaleFactor": 1, "mobile": False}
    )
    for page in ("admin:synthesis_job_changelist", "admin:synthesis_apikey_changelist"):
        browser.get(live_server.url + reverse(page))
        width = browser.execute_script("return document.documentElement.scrollWidth")
        assert width <= 1280, f"{page} is {width} px wide"


@pytest.mark.skipif(not os.environ.get("BARK_SCREENSHOT_DIR"), reason="set BARK_SCREENSHOT_DIR to write screenshots")
def test_the_readme_screenshots(browser, live_server, person):
    """A completed job's page and the admin dashboard with a little history, for the README."""
    out = Path(os.environ["BARK_SCREENSHOT_DIR"])
    out.mkdir(parents=True, exist_ok=True)
    text = (
        "Welcome to barksite. Type any text, pick a voice, and the service speaks it. "
        "Long passages are split into sentences and joined with short pauses."
    )
    shown = finish(make_job(person, prompt=text, seed=11))
    finish(make_job(person, prompt="A short greeting for the team.", seed=12))
    submit_job(JobRequest(prompt=text, engine="piper", seed=11), owner=person)  # served as a duplicate
    finish(Job.objects.create(prompt="Hola.", engine="piper", voice="v2/es_speaker_1", owner=person))  # fails
    OrmQ.objects.all().delete()  # the tasks of the jobs finished above, as workers would have taken them
    make_job(person, prompt="Waiting for a worker.")

    sign_in(browser, live_server.url)
    browser.get(live_server.url + reverse("job-detail", args=[shown.pk]))
    browser.execute_async_script(LOAD_AUDIO_JS)
    screenshot(browser, out / "job-page.png")
    browser.get(live_server.url + reverse("admin:synthesis_job_dashboard"))
    screenshot(browser, out / "admin-dashboard.png")
    browser.get(live_server.url + reverse("admin:synthesis_job_changelist"))
    screenshot(browser, out / "admin-jobs.png")
