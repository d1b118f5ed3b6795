"""Against Keras itself: keras.applications.Xception (Keras 3 on its PyTorch backend) has our
parameter counts, its weights load through our mapping and through a legacy HDF5 file, and the two
networks predict the same logits."""

from __future__ import annotations

import os

import numpy as np
import pytest

from npxception import Xception, XceptionConfig
from npxception.io import keras_to_state_dict, load_keras_weights, read_keras_h5, write_keras_h5
from npxception.testing.compare import assert_close
from tests.conftest import record_error

os.environ.setdefault("KERAS_BACKEND", "torch")
keras = pytest.importorskip("keras")

SIZE = 71  # the smallest input Keras's Xception accepts; the architecture is the paper's


def _keras_layers(model) -> list:
    """(layer name, {weight name: array}) for every layer with weights, in model order."""
    return [(layer.name, {w.name.split("/")[-1].split(":")[0]: np.asarray(w.numpy())
                          for w in layer.weights})
            for layer in model.layers if layer.weights]


@pytest.fixture(scope="module")
def keras_model():
    """Keras's Xception with random weights, including random BN statistics (so inference-mode
    BatchNorm is not the identity)."""
    assert keras.backend.backend() == "torch"
    keras.utils.set_random_seed(0)
    model = keras.applications.Xception(weights=None, input_shape=(SIZE, SIZE, 3),
                                        classifier_activation=None)
    rng = np.random.default_rng(0)
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            c = layer.gamma.shape[0]
            layer.set_weights([rng.uniform(0.5, 1.5, c), rng.uniform(-0.2, 0.2, c),
                               rng.uniform(-0.2, 0.2, c), rng.uniform(0.5, 1.5, c)])
    return model


def test_keras_parameter_counts_match(keras_model):
    ours = Xception(XceptionConfig.paper(input_shape=(SIZE, SIZE, 3)), backend="numpy").num_params()
    trainable = sum(int(np.prod(w.shape)) for w in keras_model.trainable_weights)
    assert keras_model.count_params() == ours["total"] == 22_910_480
    assert trainable == ours["trainable"] == 22_855_952
    notop = keras.applications.Xception(weights=None, include_top=False, input_shape=(SIZE, SIZE, 3))
    assert notop.count_params() == 20_861_480


def test_predictions_match_keras(keras_model):
    model = Xception(XceptionConfig.paper(input_shape=(SIZE, SIZE, 3)),
                     backend="numpy")
    model.load_state_dict(keras_to_state_dict(_keras_layers(keras_model), model))
    x = np.random.default_rng(1).uniform(-1, 1, (2, SIZE, SIZE, 3)).astype(np.float32)
    expected = np.asarray(keras_model.predict(x, verbose=0))
    err = assert_close(model.predict(x), expected, name="logits vs Keras", rtol=1e-4)
    record_error("xception logits float32 vs keras", err)


def test_legacy_hdf5_file_round_trip(keras_model, tmp_path):
    """A file in the published weights' layout, with the published files' automatic names for the
    four unnamed shortcut layers ("conv2d_1" ... "batch_normalization_4"), loads exactly."""
    layers = _keras_layers(keras_model)
    auto = {"conv2d": 0, "batch_normalization": 0}
    renamed = []
    for name, weights in layers:
        base = name.rstrip("_0123456789")
        if base in auto and not name.startswith("block"):
            auto[base] += 1
            name = f"{base}_{auto[base]}"
        renamed.append((name, weights))
    path = tmp_path / "xception_weights_tf_dim_ordering_tf_kernels.h5"
    write_keras_h5(path, renamed)
    assert [n for n, _ in read_keras_h5(path)] == [n for n, _ in renamed]

    model = Xception(XceptionConfig.paper(input_shape=(SIZE, SIZE, 3)), backend="numpy")
    model.load_keras_weights(path)
    state = model.state_dict()
    direct = keras_to_state_dict(layers, model)
    assert all(np.array_equal(state[k], direct[k]) for k in direct)
    shortcut_convs = [w["kernel"] for n, w in renamed if n.startswith("conv2d_")]
    np.testing.assert_array_equal(state["block13_shortcut/kernel"], shortcut_convs[3])

    notop_path = tmp_path / "notop.h5"
    write_keras_h5(notop_path, [(n, w) for n, w in renamed if n != "predictions"])
    with pytest.raises(ValueError, match="lack layers this model has: \\['predictions'\\].*without the top"):
        load_keras_weights(model, notop_path)
    notop = Xception(XceptionConfig.paper(include_top=False, input_shape=(SIZE, SIZE, 3)),
                     backend="numpy")
    load_keras_weights(notop, notop_path)
    with pytest.raises(ValueError, match="hold layers this model does not have: \\['predictions'\\]"):
        load_keras_weights(notop, path)
    narrow = Xception(XceptionConfig.paper(width_multiplier=0.5), backend="numpy")
    with pytest.raises(ValueError, match="widths \\(128, 128\\), but block 2's shortcut has 64"):
        load_keras_weights(narrow, path)
    bad = [(n, {**w, "pointwise_kernel": w["pointwise_kernel"][..., :7]}) if n == "block5_sepconv1"
           else (n, w) for n, w in layers]
    with pytest.raises(ValueError, match="block5_sepconv1/pointwise_kernel has shape \\(1, 1, 728, 7\\), "
                                         "this model expects \\(1, 1, 728, 728\\)"):
        keras_to_state_dict(bad, model)
    with pytest.raises(FileNotFoundError):
        load_keras_weights(model, tmp_path / "missing.h5")
