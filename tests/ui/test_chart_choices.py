"""The chart's choices belong to the session: the accuracy/loss toggle, the x axis and the compared methods
survive a visit to another tab, and the curves' CSV (under the chart and in Downloads) holds exactly what the
chart draws, every compared method included. The real app in AppTest on the tiny preset."""

from __future__ import annotations

from apptest import open_app, settle
from streamlit.runtime.memory_media_file_storage import _calculate_file_id

from obd.core.pruning import MODES
from obd.methods.registry import supports
from obd.work import export
from obd.work.sweep import curve_path, load_records


def open_tab(at, name: str):
    """Open another tab, as a click on it does (the tabs' state is the session's "view")."""
    at.session_state["view"] = name
    return settle(at.run())


def csv_id(at, label: str) -> str:
    """The media id of the CSV a download button serves (the hash of its bytes, type and name)."""
    button = next(b for b in at.get("download_button") if b.proto.label == label)
    return button.proto.url.rsplit("/", 1)[-1].split(".")[0]


def expected_csv_id(net, methods: list[str]) -> str:
    records = [
        r
        for m in methods
        for mode in MODES
        if supports(m, mode, "layer")
        for r in load_records(curve_path(net, m, mode, "layer", False))
    ]
    return _calculate_file_id(export.curves_csv(records), "text/csv", "obd-curves.csv")


def test_the_loss_choice_and_the_compared_methods_survive_another_tab_and_fill_the_csv(tiny):
    at = open_app(mode="unit", sparsity="80")
    at.segmented_control(key="curve_metric").set_value("loss").run()
    at.segmented_control(key="curve_axis").set_value("sparsity").run()
    settle(at.multiselect(key="extra_methods").set_value(["random"]).run())
    assert not at.exception, at.exception
    for other in ("Weights", "Downloads"):
        at = open_tab(at, other)
        assert not at.exception, at.exception
        if other == "Downloads":  # the chart's curves, both methods in both modes
            assert csv_id(at, "Curves (.csv)") == expected_csv_id(tiny, ["magnitude", "random"])
        at = open_tab(at, "Curves")
        assert at.segmented_control(key="curve_metric").value == "loss"
        assert at.segmented_control(key="curve_axis").value == "sparsity"
        assert at.multiselect(key="extra_methods").value == ["random"]
    chart = at.get("plotly_chart")[0].proto.spec
    assert '"test loss (cross-entropy)"' in chart and '"random, unit"' in chart
    assert csv_id(at, "These curves (.csv)") == expected_csv_id(tiny, ["magnitude", "random"])
