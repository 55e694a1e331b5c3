"""The MNIST loader on the real file and on broken ones."""

import os

import numpy as np
import pytest

from bad_inputs import MNIST_BAD, compressed_npz
from obd.core.data import ENV_VAR, DataError, _read_npz, float_cache, load_mnist, read_npz


def test_real_mnist_shapes_and_scaling(mnist):
    assert mnist.x_train.shape == (60000, 784) and mnist.x_test.shape == (10000, 784)
    assert mnist.x_train.dtype == np.float32 and 0.0 <= mnist.x_train.min() and mnist.x_train.max() == 1.0
    assert mnist.y_test[:10].tolist() == [7, 2, 1, 0, 4, 1, 4, 9, 5, 9]
    assert np.bincount(mnist.y_test).tolist() == [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
    assert mnist.x_train.mean() == pytest.approx(0.1307, abs=1e-4)
    assert not mnist.x_train.flags.writeable, "shared arrays are read-only"


def _write(path, **arrays):
    np.savez_compressed(path, **arrays)
    return path


def _good_arrays(n=5):
    rng = np.random.default_rng(0)
    return dict(
        x_train=rng.integers(0, 256, (n, 28, 28), dtype=np.uint8),
        y_train=np.arange(n, dtype=np.uint8) % 10,
        x_test=rng.integers(0, 256, (n, 28, 28), dtype=np.uint8),
        y_test=np.arange(n, dtype=np.uint8) % 10,
    )


def test_explicit_path_wins_over_env(tmp_path, monkeypatch):
    p = _write(tmp_path / "small.npz", **_good_arrays(7))
    monkeypatch.setenv(ENV_VAR, str(tmp_path / "does-not-exist.npz"))
    assert load_mnist(p).x_train.shape == (7, 784)


def test_env_var_is_used_and_a_missing_file_says_how_to_fix(tmp_path, monkeypatch):
    monkeypatch.setenv(ENV_VAR, str(tmp_path / "missing.npz"))
    with pytest.raises(DataError, match=r"missing\.npz: no such file.*OBD_MNIST_PATH"):
        load_mnist()


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda a: a.pop("y_test"), r"missing keys \['y_test'\]"),
        (lambda a: a.update(x_train=np.zeros((5, 28, 27), np.uint8)), r"x_train has shape \(5, 28, 27\)"),
        (lambda a: a.update(x_test=np.zeros((5, 28, 28), np.float32)), "x_test has dtype float32, expected uint8"),
        (lambda a: a.update(y_train=np.full(5, 12, np.uint8)), "y_train has labels up to 12"),
        (lambda a: a.update(y_test=np.zeros(4, np.uint8)), "x_test has 5 images but y_test has 4 labels"),
    ],
)
def test_wrong_contents_are_named(tmp_path, change, message):
    arrays = _good_arrays()
    change(arrays)
    p = _write(tmp_path / "bad.npz", **arrays)
    with pytest.raises(DataError, match=message) as e:
        read_npz(p)
    assert "bad.npz" in str(e.value)


def test_corrupt_and_non_npz_files(tmp_path):
    real = _write(tmp_path / "real.npz", **_good_arrays())
    truncated = tmp_path / "truncated.npz"
    truncated.write_bytes(real.read_bytes()[:200])
    text = tmp_path / "notes.npz"
    text.write_text("hello")
    for p in (truncated, text):
        with pytest.raises(DataError, match=f"{p.name}: not a readable npz file"):
            read_npz(p)


def test_object_arrays_are_never_unpickled(tmp_path):
    arrays = _good_arrays()
    arrays["x_train"] = np.array([object()] * 5, dtype=object)
    p = tmp_path / "pickled.npz"
    np.savez(p, **arrays)
    with pytest.raises(DataError, match="pickled.npz"):
        read_npz(p)


def test_without_the_variable_the_keras_cache_file_is_read(tmp_path, monkeypatch):
    import obd.core.data

    (tmp_path / "datasets").mkdir()
    cached = _write(tmp_path / "datasets" / "mnist.npz", **_good_arrays(9))
    monkeypatch.delenv(ENV_VAR, raising=False)
    monkeypatch.setattr(obd.core.data, "KERAS_CACHE", cached)
    data = load_mnist()
    assert data.source == str(cached.resolve()) and data.x_test.shape == (9, 784)


def _no_keras_cache(tmp_path, monkeypatch, load_data):
    """No variable, no Keras cache file: load_mnist falls through to Keras's download, replaced by `load_data`
    (these machines have no network; the replacement stands in for the download's outcome)."""
    import keras

    import obd.core.data

    monkeypatch.delenv(ENV_VAR, raising=False)
    monkeypatch.setattr(obd.core.data, "KERAS_CACHE", tmp_path / "nothing-here" / "mnist.npz")
    monkeypatch.setattr(keras.datasets.mnist, "load_data", load_data)


def test_a_failed_download_says_where_to_put_the_file(tmp_path, monkeypatch):
    def offline():
        raise OSError("[Errno -3] Temporary failure in name resolution")

    _no_keras_cache(tmp_path, monkeypatch, offline)
    with pytest.raises(
        DataError,
        match=r"not on this machine and the download failed \(OSError: .*name resolution\)"
        r".*mnist\.npz.*OBD_MNIST_PATH",
    ):
        load_mnist()


def test_a_download_is_checked_and_converted_like_a_file(tmp_path, monkeypatch):
    a = _good_arrays(6)
    _no_keras_cache(tmp_path, monkeypatch, lambda: ((a["x_train"], a["y_train"]), (a["x_test"], a["y_test"])))
    data = load_mnist()
    assert data.source == "keras.datasets.mnist" and data.x_train.shape == (6, 784)
    np.testing.assert_array_equal(data.x_test, a["x_test"].reshape(6, -1) / np.float32(255))
    a["y_test"] = np.full(6, 11, np.uint8)  # a damaged download is refused like a damaged file
    with pytest.raises(DataError, match="y_test has labels up to 11"):
        load_mnist()


def _identity(p):
    st = p.resolve().stat()
    return p.resolve(), st.st_mtime_ns, st.st_size


def test_a_checked_file_is_memory_mapped_from_the_cache_the_next_time(tmp_path):
    p = _write(tmp_path / "small.npz", **_good_arrays(6))
    first = read_npz(p)
    folder = float_cache(*_identity(p))
    assert sorted(f.name for f in folder.iterdir()) == ["x_test.npy", "x_train.npy", "y_test.npy", "y_train.npy"]
    _read_npz.cache_clear()  # as a new process would
    again = read_npz(p)
    for name in ("x_train", "y_train", "x_test", "y_test"):
        a, b = getattr(first, name), getattr(again, name)
        assert a.dtype == b.dtype and np.array_equal(a, b) and not b.flags.writeable
    assert again.x_test.base is not None and not again.x_test.flags.owndata  # a view of the mapped file
    assert again.x_test.max() <= 1.0 and again.y_test.dtype == np.int64


def test_a_damaged_cache_is_rebuilt_and_a_replaced_file_gets_a_new_one(tmp_path):
    p = _write(tmp_path / "small.npz", **_good_arrays(6))
    want = read_npz(p)
    folder = float_cache(*_identity(p))
    (folder / "x_test.npy").write_bytes((folder / "x_test.npy").read_bytes()[:100])  # truncated
    _read_npz.cache_clear()
    assert np.array_equal(read_npz(p).x_test, want.x_test)  # read from the npz again, not from the damage
    assert np.load(folder / "x_test.npy").shape == want.x_test.shape  # and cached whole again
    arrays = _good_arrays(6)
    arrays["x_test"] = 255 - arrays["x_test"]
    _write(p, **arrays)
    os.utime(p, ns=(1, 10**18))  # a replaced file: another modification time
    replaced = read_npz(p)
    assert np.allclose(replaced.x_test, 1.0 - want.x_test, atol=1e-6)  # (255 - v) / 255 vs 1 - v / 255: rounding
    assert not folder.exists() and float_cache(*_identity(p)).is_dir()  # the old copy is gone


@pytest.mark.parametrize("name", MNIST_BAD)
def test_broken_mnist_files_are_named_through_the_env_var(name, bad_mnist, monkeypatch):
    path, message = bad_mnist[name]
    monkeypatch.setenv("OBD_MNIST_PATH", str(path))
    with pytest.raises(DataError) as e:
        load_mnist()
    text = str(e.value)
    assert text.startswith(f"{path.resolve()}: ") and message in text, text
    assert "OBD_MNIST_PATH" in text and "allow_pickle" not in text, "says how to fix it, never to unpickle"


def test_damage_anywhere_in_a_compressed_npz_is_a_data_error(tmp_path):
    """Every 8th byte of a savez_compressed file overwritten, one file each: numpy's reader fails with zlib,
    CRC, tokenize or header errors depending on where; each must come out as the same DataError."""
    good = compressed_npz(tmp_path / "good.npz").read_bytes()
    refused = 0
    for offset in range(0, len(good), 8):
        damaged = bytearray(good)
        damaged[offset : offset + 8] = bytes(b ^ 0xFF for b in damaged[offset : offset + 8])
        path = tmp_path / f"damaged-{offset}.npz"
        path.write_bytes(bytes(damaged))
        try:
            data = load_mnist(path)
        except DataError as e:
            assert str(e).startswith(f"{path.resolve()}: "), e
            refused += 1
        else:  # a byte nothing reads (a zip field numpy ignores): the data must still be intact
            assert data.x_train.shape == (50, 784) and data.y_test.shape == (5,)
    assert refused > len(good) // 8 // 2, "most damage is caught (the rest hit fields nothing reads)"
