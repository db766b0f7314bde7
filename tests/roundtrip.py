"""One helper for every save/load round trip of the test suite."""

import os

import keras
import numpy as np


def save_and_load(model, folder, name="model.keras", compile=True):
    """``model`` saved to ``folder/name`` and loaded back."""
    path = os.path.join(str(folder), name)
    model.save(path)
    return keras.saving.load_model(path, compile=compile)


def assert_same_weights(a, b):
    """Every weight of ``a`` equals ``b``'s, in order (paths may differ:
    Keras numbers the layers it makes by how many exist in the process)."""
    assert len(a.weights) == len(b.weights)
    for va, vb in zip(a.weights, b.weights):
        np.testing.assert_array_equal(keras.ops.convert_to_numpy(va),
                                      keras.ops.convert_to_numpy(vb), err_msg=va.path)


def comparable_config(config):
    """A config with tuples as lists and without the build and compile
    entries of nested models (Keras rewrites both on load)."""
    if isinstance(config, dict):
        return {k: comparable_config(v) for k, v in config.items()
                if k not in ("build_config", "compile_config")}
    if isinstance(config, (list, tuple)):
        return [comparable_config(v) for v in config]
    return config


def assert_round_trip(model, folder, inputs, atol=0.0):
    """Saves and loads ``model``; the loaded one has the same config (every
    ``__init__`` argument), the
    same weights and the same outputs on ``inputs``. Returns it."""
    loaded = save_and_load(model, folder)
    assert type(loaded) is type(model)
    assert comparable_config(loaded.get_config()) == comparable_config(model.get_config())
    assert_same_weights(model, loaded)
    np.testing.assert_allclose(np.asarray(loaded(inputs)), np.asarray(model(inputs)),
                               atol=atol, rtol=0)
    return loaded
