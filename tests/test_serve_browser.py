"""``xpnet serve``'s page in a real browser: headless Chromium (Debian's ``chromium``), driven by Playwright
(``pip install "xpnet[browser]"``; no browser is downloaded), against a server the test starts on 127.0.0.1.

It draws a 7 with mouse events on the canvas and reads the answer, draws with a pen's pointer events, drops a
picture file, picks a ``.npy`` with the file input, drops a text file and reads the error, and clears. Every
request the page makes is checked to go to the test's server and nowhere else. With ``XPNET_SERVE_SCREENSHOT``
set to a path, the page after drawing the 7 is saved there too (docs/img/serve-page.png was made so).
"""

from __future__ import annotations

import base64
import io
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from test_serve import Image, drawn_seven, png, serving
from xpnet import serve
from xpnet.training.model import Model

pytestmark = pytest.mark.slow  # starting Chromium takes seconds
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
# Headless, and nothing that reaches out: no sandbox (root in CI), no GPU, no QUIC, no first-run, no
# background networking, component updates or sync; the profile (--user-data-dir) is a new, empty folder.
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
WAIT_MS = 30_000


@pytest.fixture(scope="module")
def model(mnist) -> Model:
    return serve.load_model(str(mnist[1]), "cpu")


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    sync_api = pytest.importorskip(
        "playwright.sync_api", reason='the browser test needs Playwright: pip install "xpnet[browser]"'
    )
    if CHROMIUM is None:
        pytest.skip("the browser test needs Chromium: apt-get install chromium (Debian's package)")
    profile = tmp_path_factory.mktemp("chromium-profile")  # new and empty
    with sync_api.sync_playwright() as p:
        context = p.chromium.launch_persistent_context(
            str(profile),
            executable_path=CHROMIUM,
            headless=True,
            args=FLAGS,
            viewport={"width": 980, "height": 720},
            timeout=WAIT_MS,
        )
        try:
            yield context
        finally:
            context.close()


@pytest.fixture
def page(browser, model):
    """The page, opened from a fresh server; every request it makes is recorded, and any to another host
    is refused (and fails the test)."""
    with serving(model) as url:
        elsewhere: list[str] = []

        def route(r):
            if r.request.url.startswith(url + "/"):
                r.continue_()
            else:
                elsewhere.append(r.request.url)
                r.abort()

        tab = browser.new_page()
        tab.route("**/*", route)
        tab.goto(url + "/", wait_until="load", timeout=WAIT_MS)
        tab.wait_for_function(
            "() => document.getElementById('model').textContent.includes('mnist model')", timeout=WAIT_MS
        )
        yield tab
        tab.close()
        assert elsewhere == []


def answered(page, state: str = "answered") -> None:
    page.wait_for_function(f"() => document.body.dataset.state === '{state}'", timeout=WAIT_MS)


def canvas_record(page, model: Model) -> dict:
    """The record the server gives the canvas as it is now, by `serve.picture_record`."""
    url = page.evaluate("document.getElementById('pad').toDataURL('image/png')")
    data = base64.b64decode(url.split(",", 1)[1])
    return serve.picture_record(model, data, "drawing.png", 5, pil=Image)


def shown(page) -> list[str]:
    """The classes listed on the page, each as ``<name> <percent>``."""
    return [" ".join(li.split()) for li in page.locator("#top li").all_inner_texts()]


def expected(record: dict) -> list[str]:
    return [f"{c['name']} {100 * c['probability']:.1f}%" for c in record["top"]]


def draw(page, points: list[tuple[float, float]]) -> None:
    """One mouse stroke through ``points``, in the canvas's own 280x280 coordinates."""
    box = page.locator("#pad").bounding_box()
    at = [(box["x"] + x * box["width"] / 280, box["y"] + y * box["height"] / 280) for x, y in points]
    page.mouse.move(*at[0])
    page.mouse.down()
    for x, y in at[1:]:
        page.mouse.move(x, y, steps=12)
    page.mouse.up()


def test_draw_a_seven_and_read_seven(page, model, tmp_path):
    assert page.locator("#model").inner_text().startswith("mnist model (784-64-10, 28x28 pixels): classes 0–9")
    draw(page, [(60, 60), (220, 60), (120, 240)])
    answered(page)
    record = canvas_record(page, model)
    assert page.locator("#best-name").inner_text() == "7" == record["name"]
    assert shown(page) == expected(record)
    assert page.locator("#status").inner_text() == "Your drawing is"
    seen = page.locator("#seen")
    assert seen.get_attribute("src").startswith("data:image/png;base64,")
    assert page.evaluate("document.getElementById('seen').naturalWidth") == 28
    shot = Path(os.environ.get("XPNET_SERVE_SCREENSHOT") or tmp_path / "page.png")
    page.screenshot(path=str(shot), full_page=True)
    assert Image.open(shot).size[0] >= 900
    page.click("#clear")
    assert page.locator("#top li").count() == 0 and page.evaluate("document.body.dataset.state") == "idle"
    ink = page.evaluate(
        "Array.from(document.getElementById('pad').getContext('2d').getImageData(0, 0, 280, 280).data)"
        ".some((v, i) => i % 4 < 3 && v < 250)"
    )
    assert not ink


def test_a_pen_draws_too(page, model):
    """Pointer events as a pen (or a finger) sends them, pressure included: the same strokes, the same answer."""
    page.evaluate(
        """() => {
        const pad = document.getElementById('pad'), r = pad.getBoundingClientRect(), s = r.width / 280;
        const send = (type, x, y) => pad.dispatchEvent(new PointerEvent(type, {
            pointerId: 7, pointerType: 'pen', pressure: 0.6, bubbles: true,
            clientX: r.left + x * s, clientY: r.top + y * s}));
        send('pointerdown', 60, 60);
        for (let i = 1; i <= 20; i++) send('pointermove', 60 + 8 * i, 60);
        for (let i = 1; i <= 20; i++) send('pointermove', 220 - 5 * i, 60 + 9 * i);
        send('pointerup', 120, 240);
    }"""
    )
    answered(page)
    record = canvas_record(page, model)
    assert shown(page) == expected(record) and record["class"] == 7


def drop(page, data: bytes, name: str, kind: str) -> None:
    """Drop a file named ``name`` holding ``data`` on the drawing area, as a drag from the desktop does."""
    transfer = page.evaluate_handle(
        """([b64, name, kind]) => {
            const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
            const dt = new DataTransfer();
            dt.items.add(new File([bytes], name, {type: kind}));
            return dt;
        }""",
        [base64.b64encode(data).decode(), name, kind],
    )
    page.dispatch_event("#drop", "drop", {"dataTransfer": transfer})


def test_drop_a_picture_pick_an_npy_and_see_the_error_for_a_text_file(page, model, mnist, tmp_path):
    data = mnist[0]
    picture = png(255 - data.x_test[3].reshape(28, 28))  # a test image, dark on light
    drop(page, picture, "test-3.png", "image/png")
    answered(page)
    record = serve.picture_record(model, picture, "test-3.png", 5, pil=Image)
    assert page.locator("#status").inner_text() == "test-3.png is" and shown(page) == expected(record)

    npy = tmp_path / "test-4.npy"
    np.save(npy, data.x_test[4].reshape(28, 28))
    page.set_input_files("#file", str(npy))
    page.wait_for_function("() => document.getElementById('status').textContent === 'test-4.npy is'", timeout=WAIT_MS)
    answered(page)
    assert shown(page) == expected(serve.picture_record(model, npy.read_bytes(), "test-4.npy", 5, pil=Image))

    drop(page, b"shopping list: milk, eggs\n", "notes.txt", "text/plain")
    answered(page, "error")
    error = page.locator("#status")
    assert error.inner_text().startswith("notes.txt: not a picture Pillow can read")
    assert "error" in error.get_attribute("class") and page.locator("#top li").count() == 0

    drop(page, drawn_seven(), "seven.png", "image/png")  # an answer after an error clears it
    answered(page)
    assert page.locator("#best-name").inner_text() == "7" and "error" not in error.get_attribute("class")


def test_a_file_over_the_limit_is_refused_before_sending(page, monkeypatch):
    big = io.BytesIO(bytes(11 << 20))
    drop(page, big.getvalue(), "huge.png", "image/png")
    answered(page, "error")
    assert "more than the 10485760 xpnet serve reads" in page.locator("#status").inner_text()
