"""A class's links: `?view=` that names no tab is said, `?hide=` leaves out the controls and tabs it names (and
names what it does not know), `?lock=1` shows the controls disabled, and "Reset to the link" brings back the
link's state after the controls moved. The real app in AppTest on the tiny preset; values from the address are
quoted as plain text."""

from __future__ import annotations

from apptest import open_app, settle


def warnings(at) -> str:
    return " ".join(w.value for w in at.warning)


def styles(at) -> str:
    return " ".join(h.proto.body for h in at.get("html"))


def test_a_view_that_names_no_tab_is_said_and_the_first_tab_opens():
    at = open_app(view="Nope", mode="unit", sparsity="90")
    assert not at.exception, at.exception
    assert "view=`'Nope'` in the address is not one of Curves, Weights" in warnings(at)
    assert "view" not in at.query_params or at.query_params["view"] == "Curves"
    assert any(b.label == "Compare all methods" for b in at.button), "the Curves tab is built"


def test_hide_leaves_out_what_it_names_and_says_what_it_does_not_know():
    at = open_app(hide="sparsity,quick,speed,[x](http://e.com)", mode="weight", sparsity="80")
    assert not at.exception, at.exception
    css = styles(at)
    assert '[class*="st-key-sparsity"]' in css and '[class*="st-key-quick_"]' in css
    assert '[role="tab"]:nth-of-type(7)' in css  # Speed, the seventh tab
    assert "hide=`'[x](http://e.com)'` in the address names no control or tab" in warnings(at)
    assert at.slider(key="sparsity").value == 80, "a hidden control still holds the link's value"


def test_lock_shows_the_controls_disabled_and_the_state_of_the_link():
    at = open_app(lock="1", mode="unit", sparsity="70")
    assert not at.exception, at.exception
    assert at.slider(key="sparsity").disabled and at.slider(key="sparsity").value == 70
    assert at.segmented_control(key="mode").disabled and at.selectbox(key="method").disabled
    assert not open_app(mode="unit", sparsity="70").slider(key="sparsity").disabled
    assert "lock=`'yes'` in the address is not 0 or 1" in warnings(open_app(lock="yes"))


def test_reset_returns_to_the_links_state_tab_and_lesson_step():
    at = open_app(mode="weight", sparsity="60", lesson="2")
    start = (at.segmented_control(key="mode").value, at.slider(key="sparsity").value)
    assert at.query_params["lesson"] == "2"
    settle(next(b for b in at.button if b.label == "Next ▶").click().run())
    settle(at.slider(key="sparsity").set_value(33).run())
    assert at.query_params["lesson"] == "3" and at.slider(key="sparsity").value == 33
    settle(next(b for b in at.button if b.label == "Reset to the link").click().run())
    assert not at.exception, at.exception
    assert at.query_params["lesson"] == "2" and at.query_params["sparsity"] == str(start[1])
    assert (at.segmented_control(key="mode").value, at.slider(key="sparsity").value) == start


def test_reset_returns_compares_b_to_the_link():
    at = open_app(view="Compare", mode="weight", sparsity="90", compare_sparsity="50")
    default_mode = at.segmented_control(key="compare_mode").value  # not in the link: B's default
    settle(at.slider(key="compare_sparsity").set_value(70).run())
    settle(at.segmented_control(key="compare_mode").set_value("weight" if default_mode == "unit" else "unit").run())
    assert at.slider(key="compare_sparsity").value == 70
    settle(next(b for b in at.button if b.label == "Reset to the link").click().run())
    assert not at.exception, at.exception
    assert at.slider(key="compare_sparsity").value == 50 and at.query_params["compare_sparsity"] == "50"
    assert at.segmented_control(key="compare_mode").value == default_mode


def test_reset_ignores_a_links_bad_values_for_b():
    bad = {"compare_sparsity": "abc", "compare_mode": "bogus", "compare_method": "[x](http://e.com)"}
    at = open_app(view="Compare", mode="weight", sparsity="90", **bad)
    settle(next(b for b in at.button if b.label == "Reset to the link").click().run())
    assert not at.exception, at.exception
    assert at.slider(key="compare_sparsity").value == 90 and at.segmented_control(key="compare_mode").value == "unit"
    assert not set(bad) & set(at.query_params), "a bad value is not written back to the address"


def test_the_pages_own_slider_for_phones_moves_the_state_and_follows_the_sidebars():
    at = open_app(mode="weight", sparsity="60")
    assert at.slider(key="sparsity_phone").value == 60
    settle(at.slider(key="sparsity_phone").set_value(85).run())
    assert at.slider(key="sparsity").value == 85 and at.query_params["sparsity"] == "85"
    settle(at.slider(key="sparsity").set_value(40).run())
    assert at.slider(key="sparsity_phone").value == 40 and not at.exception


def test_a_link_names_compares_b_and_an_upload_by_its_digest_or_says_it_is_gone(tiny, tmp_path):
    from obd.core.network import to_keras
    from ui.services import models

    at = open_app(view="Compare", mode="weight", sparsity="90", compare_mode="unit", compare_sparsity="50")
    assert (at.segmented_control(key="compare_mode").value, at.slider(key="compare_sparsity").value) == ("unit", 50)
    gone = "ab" * 32
    at = open_app(upload=gone, mode="unit", sparsity="90")
    assert not at.exception, at.exception
    assert f"upload=`'{gone[:40]}…'` in the address names an uploaded model that is no longer on this server" in (
        warnings(at)
    )
    assert "upload" not in at.query_params and "preset tiny" in at.caption[0].value
    path = tmp_path / "tiny.keras"
    to_keras(tiny).save(path)
    raw = path.read_bytes()
    digest = models.store_upload(raw, "a-test-session")  # as an upload in another session put it there
    at = open_app(upload=digest, mode="unit", sparsity="90")
    assert not at.exception, at.exception
    assert at.query_params["upload"] == digest and f"upload {digest[:8]}" in at.caption[0].value
