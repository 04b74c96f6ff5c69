"""The pickle-free model file (issue 2, Done-when 3): round trips, and one test per kind
of hostile or broken file, each raising ValueError that names the problem without
running any code.
"""

from __future__ import annotations

import io
import json
import os
import zipfile

import numpy as np
import pytest

from keras_lode import model as ode
from keras_lode.model import default_config, load_model, random_model, save_model, validate


@pytest.fixture
def model():
    return random_model(
        1,
        hidden=5,
        latent=4,
        state=6,
        width=7,
        depth=2,
        step_size=0.5,
        mean=[1.0, -5.0, 0.5],
        std=[0.5, 1.0, 0.2],
        horizon=40,
    )


def _config_bytes(config):
    return np.frombuffer(json.dumps(config).encode("utf-8"), dtype=np.uint8)


def _write_raw(path, arrays):
    """Writes arrays with np.savez, bypassing every check of save_model."""
    with open(path, "wb") as f:
        np.savez(f, **arrays)
    return path


def _arrays(model):
    return {"config": _config_bytes(model.config), **model.weights}


# --- round trips -----------------------------------------------------------------------------


def test_round_trip_float64(tmp_path, model):
    path = tmp_path / "m.npz"
    model.save(path)
    assert os.path.exists(path)  # written exactly there, no ".npz" appended twice
    loaded = load_model(path)
    assert loaded.config == model.config
    for k, v in model.weights.items():
        np.testing.assert_array_equal(loaded.weights[k], v)
    t = np.arange(0.0, 30.0)
    z = np.random.default_rng(0).normal(size=(2, 4))
    np.testing.assert_array_equal(loaded.decode(t, z), model.decode(t, z))


def test_round_trip_float32_file_and_compute(tmp_path, model):
    weights32 = {k: v.astype(np.float32) for k, v in model.weights.items()}
    path = tmp_path / "m32.npz"
    save_model(path, model.config, weights32)
    m32 = load_model(path, dtype=np.float32)
    assert m32.weights["field.scale"].dtype == np.float32
    y = m32.decode(np.arange(10.0), np.zeros(4))
    assert y.dtype == np.float32 and y.shape == (10, 3)
    np.testing.assert_allclose(y, model.decode(np.arange(10.0), np.zeros(4)), atol=1e-4)


def test_config_properties(model):
    assert model.points_per_epoch == 10
    assert model.horizon == 40
    assert model.lr_range == (1e-4, 1e-1)
    d = model.planner_defaults
    assert (d["window"], d["samples"], d["sigma"], d["tol"], d["top_k"], d["anchor"]) == (
        30,
        30,
        0.15,
        2.0,
        3,
        "max_lr",
    )
    d["window"] = 5  # a copy: the model is unchanged
    assert model.planner_defaults["window"] == 30
    assert model.channel_names == ["loss", "log_lr", "metric"]


def test_default_config_rejects_bad_planner_key():
    with pytest.raises(ValueError, match="windw"):
        default_config(planner={"windw": 3})


def test_newer_minor_version_loads(tmp_path, model):
    config = model.config
    config["format_version"] = "1.7"
    load_model(_write_raw(tmp_path / "m.npz", {**_arrays(model), "config": _config_bytes(config)}))


def test_missing_file_is_file_not_found(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.npz"):
        load_model(tmp_path / "nope.npz")


# --- hostile and broken files: one test per case -----------------------------------------


class _Exploit:
    """Unpickling this would create a marker file: proof that code ran."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_pickled_object_array_is_refused_and_never_run(tmp_path, model):
    marker = tmp_path / "pwned"
    evil = np.empty(1, dtype=object)
    evil[0] = _Exploit(marker)
    arrays = _arrays(model)
    arrays["to_latent.bias"] = evil
    path = _write_raw(tmp_path / "evil.npz", arrays)
    with pytest.raises(ValueError, match=r"to_latent\.bias.*object"):
        load_model(path)
    assert not marker.exists()


def test_pickle_instead_of_npz_is_refused_and_never_run(tmp_path):
    import pickle

    marker = tmp_path / "pwned"
    path = tmp_path / "evil.npz"
    path.write_bytes(pickle.dumps(_Exploit(marker)))
    with pytest.raises(ValueError, match="evil.npz.*not a readable .npz"):
        load_model(path)
    assert not marker.exists()


def test_object_config_is_refused(tmp_path, model):
    arrays = _arrays(model)
    arrays["config"] = np.array([model.config], dtype=object)
    with pytest.raises(ValueError, match="'config'.*object"):
        load_model(_write_raw(tmp_path / "m.npz", arrays))


def test_truncated_zip(tmp_path, model):
    path = tmp_path / "m.npz"
    model.save(path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match="m.npz.*not a readable .npz"):
        load_model(path)


def test_corrupt_member_data(tmp_path, model):
    # A valid zip directory whose member bytes were damaged: the CRC check fails.
    path = tmp_path / "m.npz"
    model.save(path)
    data = bytearray(path.read_bytes())
    with zipfile.ZipFile(io.BytesIO(bytes(data))) as zf:
        info = zf.getinfo("encoder.weight_hh.npy")
    start = info.header_offset + 30 + len(info.filename) + 200
    data[start : start + 8] = b"\x00" * 8
    path.write_bytes(bytes(data))
    with pytest.raises(ValueError, match="encoder.weight_hh"):
        load_model(path)


def test_missing_config(tmp_path, model):
    arrays = _arrays(model)
    del arrays["config"]
    with pytest.raises(ValueError, match="'config'.*missing"):
        load_model(_write_raw(tmp_path / "m.npz", arrays))


def test_missing_weight(tmp_path, model):
    arrays = _arrays(model)
    del arrays["field.layers.1.weight"]
    with pytest.raises(ValueError, match=r"m.npz.*'field\.layers\.1\.weight'.*missing"):
        load_model(_write_raw(tmp_path / "m.npz", arrays))


def test_unknown_extra_key(tmp_path, model):
    arrays = _arrays(model)
    arrays["backdoor"] = np.zeros(3)
    with pytest.raises(ValueError, match="'backdoor'.*unknown extra key"):
        load_model(_write_raw(tmp_path / "m.npz", arrays))


def test_unknown_config_key(tmp_path, model):
    config = model.config
    config["architecture"]["activation"] = "gelu"
    arrays = {**_arrays(model), "config": _config_bytes(config)}
    with pytest.raises(ValueError, match="architecture.activation.*unknown key"):
        load_model(_write_raw(tmp_path / "m.npz", arrays))


def test_missing_config_key(tmp_path, model):
    config = model.config
    del config["integrator"]["step_size"]
    arrays = {**_arrays(model), "config": _config_bytes(config)}
    with pytest.raises(ValueError, match="integrator.step_size"):
        load_model(_write_raw(tmp_path / "m.npz", arrays))


def test_wrong_shape(tmp_path, model):
    arrays = _arrays(model)
    arrays["encoder.weight_hh"] = np.zeros((15, 4))
    with pytest.raises(ValueError, match=r"'encoder\.weight_hh'.*\(15, 5\).*\(15, 4\)"):
        load_model(_write_raw(tmp_path / "m.npz", arrays))


@pytest.mark.parametrize("dtype", [np.int64, np.float16, np.complex128])
def test_wrong_dtype(tmp_path, model, dtype):
    arrays = _arrays(model)
    arrays["to_channels.bias"] = np.zeros(3, dtype=dtype)
    with pytest.raises(ValueError, match=r"'to_channels\.bias'.*float32 or float64"):
        load_model(_write_raw(tmp_path / "m.npz", arrays))


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_weight(tmp_path, model, bad):
    arrays = _arrays(model)
    w = arrays["field.layers.0.weight"].copy()
    w[2, 3] = bad
    arrays["field.layers.0.weight"] = w
    with pytest.raises(ValueError, match=r"'field\.layers\.0\.weight'.*1 NaN/inf"):
        load_model(_write_raw(tmp_path / "m.npz", arrays))


def test_unknown_major_format_version(tmp_path, model):
    config = model.config
    config["format_version"] = "2.0"
    arrays = {**_arrays(model), "config": _config_bytes(config)}
    with pytest.raises(ValueError, match="format_version.*major version 1.*'2.0'"):
        load_model(_write_raw(tmp_path / "m.npz", arrays))


def test_wrong_format_name(tmp_path, model):
    config = model.config
    config["format"] = "something.else"
    arrays = {**_arrays(model), "config": _config_bytes(config)}
    with pytest.raises(ValueError, match="'format'.*keras_lode.lode"):
        load_model(_write_raw(tmp_path / "m.npz", arrays))


def test_config_not_json(tmp_path, model):
    arrays = _arrays(model)
    arrays["config"] = np.frombuffer(b"{'not': json,", dtype=np.uint8)
    with pytest.raises(ValueError, match="'config'.*invalid JSON"):
        load_model(_write_raw(tmp_path / "m.npz", arrays))


def test_config_not_utf8_bytes(tmp_path, model):
    arrays = _arrays(model)
    arrays["config"] = np.arange(10, dtype=np.float64)
    with pytest.raises(ValueError, match="'config'.*uint8"):
        load_model(_write_raw(tmp_path / "m.npz", arrays))


def test_sizes_inconsistent_with_weights(tmp_path, model):
    config = model.config
    config["architecture"]["hidden"] = 6  # weights were made for hidden=5
    arrays = {**_arrays(model), "config": _config_bytes(config)}
    with pytest.raises(ValueError, match=r"'encoder\.weight_ih'.*\(18, 4\).*\(15, 4\)"):
        load_model(_write_raw(tmp_path / "m.npz", arrays))


@pytest.mark.parametrize(
    "section,key,value,match",
    [
        ("channels", "std", [1.0, 0.0, 1.0], r"channels\.std\[1\].*> 0"),
        ("channels", "mean", [1.0, 2.0], r"channels\.mean.*3 numbers"),
        ("integrator", "step_size", -1.0, r"integrator\.step_size.*> 0"),
        ("integrator", "method", "dopri5", r"integrator\.method.*'rk4'"),
        ("time", "horizon", 0, r"time\.horizon.*>= 1"),
        ("planner", "lr_range", [0.1, 0.001], r"planner\.lr_range.*lo <= hi"),
        ("planner", "anchor", "random", r"planner\.anchor"),
        ("architecture", "depth", -1, r"architecture\.depth.*>= 0"),
        ("architecture", "hidden", 2.5, r"architecture\.hidden.*integer"),
    ],
)
def test_bad_config_values(tmp_path, model, section, key, value, match):
    config = model.config
    config[section][key] = value
    arrays = {**_arrays(model), "config": _config_bytes(config)}
    with pytest.raises(ValueError, match=match):
        load_model(_write_raw(tmp_path / "m.npz", arrays))


def test_huge_declared_array_is_refused_before_reading(tmp_path, model):
    # A header declaring a huge array is rejected from the header (shape check), so a
    # malicious file cannot make the loader allocate gigabytes.
    arrays = _arrays(model)
    arrays["encoder.bias_ih"] = np.zeros(10**6)
    with pytest.raises(ValueError, match=r"'encoder\.bias_ih'.*\(15,\).*\(1000000,\)"):
        load_model(_write_raw(tmp_path / "m.npz", arrays))


def test_validate_in_memory(model):
    weights = dict(model.weights)
    weights["field.scale"] = np.float64(1.0)  # not an ndarray
    with pytest.raises(ValueError, match="'field.scale'.*NumPy array"):
        validate(model.config, weights, path="<test>")
    validate(model.config, model.weights)


def test_save_refuses_invalid_weights_and_leaves_no_file(tmp_path, model):
    weights = dict(model.weights)
    weights["to_latent.bias"] = np.full(4, np.nan)
    with pytest.raises(ValueError, match="to_latent.bias"):
        save_model(tmp_path / "bad.npz", model.config, weights)
    assert os.listdir(tmp_path) == []


def test_file_format_constants():
    assert ode.FORMAT == "keras_lode.lode" and ode.FORMAT_VERSION.startswith("1.")


def test_training_summary_nan_becomes_null_and_is_logged(tmp_path, model, caplog):
    config = default_config(
        hidden=5,
        latent=4,
        state=6,
        width=7,
        depth=2,
        step_size=0.5,
        horizon=40,
        mean=[1.0, -5.0, 0.5],
        std=[0.5, 1.0, 0.2],
        training={"val_mse": float("nan"), "runs": np.int64(12), "errs": np.array([0.5, 1.0])},
    )
    assert config["training"] == {"val_mse": None, "runs": 12, "errs": [0.5, 1.0]}
    assert "training.val_mse" in caplog.text
    save_model(tmp_path / "m.npz", config, model.weights)
    assert load_model(tmp_path / "m.npz").config["training"]["runs"] == 12


def test_metadata_without_json_form_raises_naming_key():
    with pytest.raises(TypeError, match="`metadata.owner`"):
        default_config(metadata={"owner": object()})


def test_nan_literal_in_config_json(tmp_path, model):
    text = json.dumps(model.config).replace('"mean": [1.0', '"mean": [NaN')
    assert "NaN" in text
    arrays = {**_arrays(model), "config": np.frombuffer(text.encode(), dtype=np.uint8)}
    with pytest.raises(ValueError, match=r"channels\.mean\[0\].*finite"):
        load_model(_write_raw(tmp_path / "m.npz", arrays))
