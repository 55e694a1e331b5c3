"""A bad model file uploaded to the app: one clear message in the sidebar, and nothing of the user's changes
(the model in use, its numbers, the cache); the refused file is deleted and no code from it runs (issue 6).

The file checks are tested with every kind of bad file in tests/training/test_model_files.py, the CLI's handling
in tests/work/test_cli_errors.py, each validator of a value with its module's tests (tests/core, tests/methods,
tests/training, tests/work).
"""

from __future__ import annotations

import hashlib
import tempfile
from pathlib import Path

import pytest
from apptest import settle, shown
from streamlit.testing.v1 import AppTest

from obd.core.config import TrainConfig, preset_spec
from obd.training.model import build_model, cache_path, save_model

ROOT = Path(__file__).resolve().parents[2]
APP = str(ROOT / "app.py")


@pytest.fixture(scope="module")
def app_session(tmp_path_factory):
    """The app on the tiny preset, with an uploaded good model in use. The preset's cache file is an untrained
    net saved into a private cache (these tests need a model, not a good one); Streamlit's process-wide
    caches are cleared afterwards so that no other test sees it."""
    import streamlit as st

    cache = tmp_path_factory.mktemp("app-cache")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("OBD_CACHE_DIR", str(cache))
        save_model(build_model(preset_spec("tiny"), seed=0), cache_path(preset_spec("tiny"), TrainConfig()))
        st.cache_resource.clear()
        st.cache_data.clear()
        good = build_model(preset_spec("tiny"), seed=7)
        upload = save_model(good, tmp_path_factory.mktemp("upload") / "mine.keras")
        at = AppTest.from_file(APP, default_timeout=300)
        at.query_params.update({"preset": "tiny", "mode": "weight", "sparsity": "60"})
        settle(at.run())  # the preset's curves, computed in the background, are done before anything is compared
        at.sidebar.file_uploader[0].set_value(("mine.keras", upload.read_bytes(), "application/octet-stream"))
        settle(at.run())  # the upload's curves and timings are done: the cache changes no more by themselves
        assert not at.exception and "upload" in at.caption[0].value
        yield at, cache
    st.cache_resource.clear()
    st.cache_data.clear()


def _files(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


# The upload is the app's entry point for a model file; the file checks are tried with every kind of bad file in
# tests/training/test_model_files.py. Here one file of each way a refusal happens: a damaged archive, a model
# whose code must never run, a file too large once unpacked, and a config that asks Keras to build a huge layer.
UPLOADS = ["truncated_tail", "lambda", "zip_bomb", "hostile_dense_7m"]


def test_the_uploaded_kinds_are_real_bad_files(bad_files):
    assert all(bad_files[n].uploadable for n in UPLOADS)


@pytest.mark.parametrize("name", UPLOADS)
def test_a_bad_upload_shows_the_message_and_keeps_the_uploaded_model(name, bad_files, app_session, markers):
    at, cache = app_session
    bad = bad_files[name]
    before = {
        "caption": at.caption[0].value,
        "accuracy": next(m.value for m in at.metric if m.label == "Test accuracy"),
    }
    cached = _files(cache)
    raw = bad.path.read_bytes()
    upload_name = f"student-{name}.keras"
    at.sidebar.file_uploader[0].set_value((upload_name, raw, "application/octet-stream"))
    at.run()
    assert not at.exception, at.exception
    errors = [shown(e.value) for e in at.sidebar.error]  # the text the page shows
    assert len(errors) == 1, errors
    assert errors[0].startswith(f"{upload_name}: ") and bad.wrong in errors[0] and bad.supported in errors[0], errors
    assert at.caption[0].value == before["caption"], "the uploaded model stays"
    assert next(m.value for m in at.metric if m.label == "Test accuracy") == before["accuracy"]
    assert _files(cache) == cached, "nothing written to the cache"
    digest = hashlib.sha256(raw).hexdigest()
    assert not (Path(tempfile.gettempdir()) / f"obd-upload-{digest}.keras").exists(), "the refused file is deleted"
    assert not any(m.exists() for m in markers.values())
