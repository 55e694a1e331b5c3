"""An uploaded model trained on raw 0-255 pixels (tests/user_models.py) is fed the pixels it takes: the app says
so under the model's name, and its test accuracy is Keras's own; a pruning that empties one of its layers is said
beside the accuracy."""

from apptest import open_app, settle
from user_models import keras_accuracy, user_model


def test_an_upload_built_for_raw_pixels_is_fed_raw_pixels_and_says_so(mnist, tmp_path):
    user = user_model("raw")
    path = tmp_path / "raw.keras"
    user.model.save(path)
    at = open_app(mode="weight", sparsity="0")
    at.sidebar.file_uploader[0].set_value(("raw.keras", path.read_bytes(), "application/octet-stream"))
    settle(at.run())
    assert not at.exception
    assert "upload" in at.caption[0].value and "raw 0-255 pixels" in at.caption[0].value
    shown = next(m for m in at.metric if m.label == "Test accuracy").value
    assert abs(float(shown.split()[0]) - 100 * keras_accuracy(user, mnist.y_test)) <= 0.1


def test_a_pruning_that_empties_a_layer_says_so_beside_the_accuracy(mnist, tmp_path):
    path = tmp_path / "raw.keras"
    user_model("raw").model.save(path)  # its last hidden layer has 32 units: 99 % of them is all of them
    at = open_app(mode="unit", sparsity="99")
    at.sidebar.file_uploader[0].set_value(("raw.keras", path.read_bytes(), "application/octet-stream"))
    settle(at.run())
    assert not at.exception
    assert any("kept no weight" in c.value and "one class" in c.value for c in at.caption)
