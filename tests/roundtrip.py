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
    """Every weight of ``a`` equals ``b``'s of the same path."""
    wa = {v.path: keras.ops.convert_to_numpy(v) for v in a.weights}
    wb = {v.path: keras.ops.convert_to_numpy(v) for v in b.weights}
    assert sorted(wa) == sorted(wb)
    for key in wa:
        np.testing.assert_array_equal(wa[key], wb[key], err_msg=key)


def assert_round_trip(model, folder, inputs, atol=0.0):
    """Saves and loads ``model``; the loaded one has the same config, the
    same weights and the same outputs on ``inputs``. Returns it."""
    loaded = save_and_load(model, folder)
    assert type(loaded) is type(model)
    assert loaded.get_config() == model.get_config()
    assert_same_weights(model, loaded)
    np.testing.assert_allclose(np.asarray(loaded(inputs)), np.asarray(model(inputs)),
                               atol=atol, rtol=0)
    return loaded
