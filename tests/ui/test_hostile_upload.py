"""The dashboard's uploads (issue 27): a hostile model file is refused with one message while the uploaded model and
its numbers stay and the page goes on answering; checked copies in the temp folder are kept only while used.

Real files (benchmarks/hostile_upload.py rewrites a real .keras as an attacker would) through the real app
(AppTest), and the real UploadStore over real files.
"""

from __future__ import annotations

import re
import tempfile
from pathlib import Path

import pytest
from apptest import open_app, settle, shown

from benchmarks.hostile_upload import NAMES, hostile_files, rewrite
from benchmarks.live_app import CHROMIUM_ARGS, IDLE
from obd.core.config import ModelSpec, preset_spec
from obd.training.model import build_model, save_model
from ui.services.models import UploadStore, upload_digest


@pytest.fixture(scope="module")
def hostile(tmp_path_factory):
    folder = tmp_path_factory.mktemp("hostile")
    template = save_model(build_model(ModelSpec((8,), True), seed=0), folder / "template.keras")
    return hostile_files(folder, template)


@pytest.fixture(scope="module")
def page(tiny, tmp_path_factory):
    """The app on the tiny preset with a user's model uploaded (an untrained tiny net: a model, not a good one)."""
    good = save_model(build_model(preset_spec("tiny"), seed=7), tmp_path_factory.mktemp("upload") / "mine.keras")
    at = open_app(sparsity="60")
    at.sidebar.file_uploader[0].set_value(("mine.keras", good.read_bytes(), "application/octet-stream"))
    settle(at.run())
    assert not at.exception and "upload" in at.caption[0].value
    return at


def _numbers(at) -> tuple:
    return at.caption[0].value, tuple((m.label, m.value) for m in at.metric)


@pytest.mark.parametrize("name", NAMES)
def test_a_hostile_upload_is_refused_and_the_uploaded_model_and_its_numbers_stay(name, hostile, page):
    at, h = page, hostile[name]
    before = _numbers(at)
    raw = h.path.read_bytes()
    at.sidebar.file_uploader[0].set_value((f"student-{name}.keras", raw, "application/octet-stream"))
    at.run()
    assert not at.exception, at.exception
    errors = [shown(e.value) for e in at.sidebar.error]
    assert len(errors) == 1 and errors[0].startswith(f"student-{name}.keras: ") and h.refusal in errors[0], errors
    assert "obd loads Keras 3 .keras files" in errors[0]
    assert _numbers(at) == before, "the uploaded model and its numbers stay"
    digest = upload_digest(raw)
    assert not list(Path(tempfile.gettempdir()).glob(f"*obd-upload-{digest}*")), "no copy of the refused file is kept"
    assert h.path.read_bytes() == raw


def test_the_page_keeps_answering_after_the_dense_7m_upload(hostile, page):
    at = page
    at.sidebar.file_uploader[0].set_value(("huge.keras", hostile["dense_7m"].path.read_bytes(), "x"))
    at.run()
    caption, metrics = _numbers(at)
    at.slider(key="sparsity").set_value(97)
    settle(at.run())
    assert not at.exception, at.exception
    assert at.caption[0].value == caption.replace("at 60 %", "at 97 %") and "upload" in caption
    assert _numbers(at)[1] != metrics, "the new sparsity has its own numbers"


LURE = "[Sign in](http://e.com/a) www.e.com <img src=x onerror=1>"  # a layer's name in a file


@pytest.fixture(scope="module")
def lure(tmp_path_factory, hostile) -> Path:
    """A file whose refusal quotes a layer name that would be a link, an autolink and an HTML element."""

    def rename(config: dict) -> None:
        layer = config["config"]["layers"][1]
        layer["class_name"], layer["config"]["name"] = "Conv2D", LURE

    template = hostile["dense_7m"].path.parent / "template.keras"
    return rewrite(template, tmp_path_factory.mktemp("lure") / "lure.keras", rename)


def test_names_from_the_file_are_shown_as_text(lure, page):
    at = page
    at.sidebar.file_uploader[0].set_value(("a [b](http://e.com).keras", lure.read_bytes(), "x"))
    at.run()
    (error,) = [e.value for e in at.sidebar.error]
    assert shown(error).startswith("a [b](http://e.com).keras: layer ") and LURE in shown(error)
    assert not re.search(r"(?<!\\)[\[\]<>:]", error), "every bracket, angle and colon escaped"


@pytest.mark.browser
def test_no_link_or_element_from_an_uploaded_file_reaches_the_page(lure, server, chromium):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.goto(server.url, timeout=60_000)
            page.wait_for_selector(IDLE, timeout=240_000)
            page.locator("[data-testid='stSidebar'] input[type='file']").set_input_files(str(lure))
            alert = page.locator("[data-testid='stSidebar'] [data-testid='stAlert']").filter(has_text="Conv2D")
            alert.wait_for(timeout=120_000)
            assert LURE in alert.inner_text().replace("\u200b", ""), alert.inner_text()  # shown, as text
            assert page.locator('a[href*="e.com"]').count() == 0
            assert page.locator('img[src="x"]').count() == 0 and page.locator("img[onerror]").count() == 0
        finally:
            browser.close()


def _upload(folder: Path, digest: str, size: int) -> None:
    (folder / f"obd-upload-{digest}.keras").write_bytes(bytes(size))


def test_uploads_no_open_session_uses_are_removed_oldest_first_over_the_cap(tmp_path):
    open_sessions = {"a", "b", "c"}
    _upload(tmp_path, "left", 500)  # left by an earlier server: the first to go
    store = UploadStore(tmp_path, cap=1000, active=lambda s: s in open_sessions)
    for session, digest in (("a", "d1"), ("b", "d2")):
        _upload(tmp_path, digest, 300)
        store.use(digest, session)
    assert store.files() == ["d1", "d2"], "1100 bytes: over the cap, the earlier server's file goes"
    _upload(tmp_path, "d3", 300)
    store.use("d3", "a")  # session a moves on: its old upload is no one's now, but all fit
    assert store.files() == ["d1", "d2", "d3"]
    _upload(tmp_path, "d4", 300)
    store.use("d4", "c")  # over the cap: d1, used by no one, goes; d2 (b's) and d3 (a's) stay
    assert store.files() == ["d2", "d3", "d4"]
    assert sorted(p.name for p in tmp_path.iterdir()) == [f"obd-upload-d{i}.keras" for i in (2, 3, 4)]


def test_a_closed_sessions_upload_goes_and_an_open_ones_stays_even_over_the_cap(tmp_path):
    open_sessions = {"a", "b"}
    store = UploadStore(tmp_path, cap=500, active=lambda s: s in open_sessions)
    _upload(tmp_path, "d1", 400)
    store.use("d1", "a")
    open_sessions.discard("a")  # the tab is closed
    _upload(tmp_path, "d2", 400)
    store.use("d2", "b")
    assert store.files() == ["d2"]
    _upload(tmp_path, "d3", 400)
    store.use("d3", "c")  # b is still open: both stay, over the cap
    assert store.files() == ["d2", "d3"] and (tmp_path / "obd-upload-d2.keras").is_file()
