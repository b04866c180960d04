"""The Space in a real browser: Playwright driving Debian's Chromium (`apt-get install -y chromium`).

Open the page, upload the bundled example, choose a performer in the gallery, click Generate, watch the
progress bar move with the chunks, wait for the video, check it plays for the audio's length, take a
screenshot. The app runs in this process with the embedded default pipeline, on 127.0.0.1; the browser may
not reach anything else (every other request is blocked and the test fails if there was one).

Run it alone with `make test-browser`. `APVG_UPDATE_SCREENSHOT=1` also writes the screenshot to
docs/media/space_screenshot.png (the one the README shows).
"""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path

import pytest

CHROMIUM = Path(os.environ.get("APVG_CHROMIUM", "/usr/bin/chromium"))
ROOT = Path(__file__).resolve().parents[1]
MOZART = ROOT / "spaces_demo" / "examples" / "mozart_k458_movement1.ogg"
SCREENSHOT = ROOT / "docs" / "media" / "space_screenshot.png"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--mute-audio",
]


pytestmark = [
    pytest.mark.browser,
    pytest.mark.slow,
    pytest.mark.skipif(
        not CHROMIUM.exists(),
        reason=f"no Chromium at {CHROMIUM}: `apt-get install -y chromium` (Debian); never `playwright install`",
    ),
]


@pytest.fixture(scope="module")
def space_url(tmp_path_factory):
    pytest.importorskip("playwright.sync_api")
    import apvg_hf
    from test_space import free_port, load_app

    app = load_app()
    pipe = apvg_hf.APVGPipeline.from_pretrained(apvg_hf.default_pipeline_path())
    demo = app.create_demo(
        pipe=pipe,
        model_path=apvg_hf.default_pipeline_path(),
        output_dir=tmp_path_factory.mktemp("space_out"),
    )
    _, url, _ = app.launch(
        demo, server_name="127.0.0.1", server_port=free_port(), prevent_thread_lock=True, quiet=True
    )
    try:
        yield url.rstrip("/")
    finally:
        demo.close()


def test_page_upload_choose_generate_play_screenshot(space_url, tmp_path):
    from playwright.sync_api import sync_playwright

    outside: list[str] = []

    def only_loopback(route):
        url = route.request.url
        if url.startswith(space_url) or url.startswith(("data:", "blob:")):
            route.continue_()
        else:
            outside.append(url)
            route.abort()

    with sync_playwright() as p:
        browser = p.chromium.launch_persistent_context(
            str(tmp_path / "profile"),
            executable_path=str(CHROMIUM),
            headless=True,
            args=CHROMIUM_ARGS,
            viewport={"width": 1360, "height": 960},
            device_scale_factor=1,
        )
        try:
            page = browser.new_page()
            page.route("**/*", only_loopback)
            page.goto(space_url, wait_until="domcontentloaded")
            page.wait_for_selector("#generate", timeout=60_000)

            # Both sources are offered: upload and microphone.
            sources = page.locator("#audio-input [data-testid=source-select] button")
            labels = [sources.nth(i).get_attribute("aria-label") or "" for i in range(sources.count())]
            assert any("upload" in x.lower() for x in labels), labels
            assert any("record" in x.lower() or "microphone" in x.lower() for x in labels), labels
            # Upload the example through the page's file input; wait until the player shows it.
            page.locator("#audio-input input[type=file]").set_input_files(str(MOZART))
            page.wait_for_function(
                "() => /0:20/.test(document.querySelector('#audio-input').innerText)", timeout=30_000
            )
            # Choose a performer in the gallery (the fourth picture).
            thumbs = page.locator("#performers .thumbnail-item")
            assert thumbs.count() >= 3
            chosen = thumbs.nth(3)
            chosen.click()
            page.wait_for_function(
                "() => document.querySelectorAll('#performers .thumbnail-item')[3].classList.contains('selected')"
            )

            t0 = time.perf_counter()
            page.click("#generate")
            # The progress bar follows the chunks ("k/n chunks"), then the video arrives.
            page.wait_for_function(
                "() => /\\d+\\/\\d+ chunks/.test(document.querySelector('#result-video').innerText)",
                timeout=120_000,
            )
            page.wait_for_selector("#result-video video", timeout=300_000)
            took = time.perf_counter() - t0
            duration, width, height = page.evaluate(
                """async () => {
                    const v = document.querySelector('#result-video video');
                    if (v.readyState < 1) await new Promise(r => v.addEventListener('loadedmetadata', r, {once: true}));
                    return [v.duration, v.videoWidth, v.videoHeight];
                }"""
            )
            assert abs(duration - 20.0) < 0.2, duration
            assert (width, height) == (512, 256)  # side by side, 256 px panels (the page's defaults)
            page.wait_for_selector("#sync-plot img", timeout=30_000)
            assert "600 frames" in page.inner_text("#summary")

            # The keypoints download is the chosen performer's.
            href = page.locator("#keypoints a").first.get_attribute("href")
            data = json.loads(page.request.get(href if href.startswith("http") else space_url + href).body())
            assert data["num_frames"] == 600 and data["performer"] != "default"

            # A frame from the middle of the piece for the picture, then the screenshot.
            page.evaluate(
                """async () => {
                    const v = document.querySelector('#result-video video');
                    v.currentTime = 8.0;
                    await new Promise(r => v.addEventListener('seeked', r, {once: true}));
                }"""
            )
            page.mouse.move(0, 0)
            page.wait_for_timeout(500)
            shot = tmp_path / "space_screenshot.png"
            page.screenshot(path=str(shot), full_page=True)
        finally:
            browser.close()
    assert shot.stat().st_size > 50_000
    assert not outside, f"the page tried to reach the network: {outside[:5]}"
    if os.environ.get("APVG_UPDATE_SCREENSHOT"):
        SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(shot, SCREENSHOT)
    print(f"20 s of audio: video in the page {took:.1f} s after the click; screenshot {shot}")
