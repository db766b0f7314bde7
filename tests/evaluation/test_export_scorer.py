"""``mltf.export --set_decoding`` of runs decoded by a method's scorer (a
hand-built WGAN-gp critic; RETDM's embedding with kNN candidates): the
SavedModel's ``decoded`` equals ``mltf.predict --set_decoding``'s sets and the
numpy decoding (``mltf.decoding`` + ``scoring.dependency_scores`` /
``nearest_sets``) of the SavedModel's own probabilities and inputs."""

import json
import shutil

import keras
import numpy as np
import pytest
import tensorflow as tf

from test_inference import LABELS, SIZE, env, independent_inputs, run_main  # noqa: F401
from test_predict_decoding import COUNTS, SETS, decoding_run  # noqa: F401
from mltf import decoding, export, inference, predict
from mltf.methods import scoring
from mltf.methods.wgan_gp.critic import LabelCritic
from mltf.training import set_decoding


def _critic():
    fext = keras.Sequential([keras.layers.GlobalAveragePooling2D(), keras.layers.Dense(6)])
    return scoring.CriticSetScorer(LabelCritic(len(LABELS), projection_dim=8, hidden_dim=8,
                                               depth=2), fext)


def _embedding():
    image = keras.Sequential([keras.layers.GlobalAveragePooling2D(), keras.layers.Dense(4)])
    return scoring.EmbeddingSetScorer(image, keras.layers.Dense(6, activation="relu"),
                                      keras.layers.Dense(4), normalize=True)


def _scorer_run(tuned_file, root, make, w, knn):
    """A run folder: the tuned model, ``make()``'s scorer as set_scorer.keras
    and a method decoding at ``w`` with ``knn`` kNN candidates."""
    keras.utils.set_random_seed(3)
    scorer = make()
    scorer((tf.zeros([1, SIZE, SIZE, 3]), tf.zeros([1, 1, len(LABELS)])))
    run = root / "run"
    run.mkdir()
    shutil.copy(tuned_file, run / "model.keras")
    scorer.save(str(run / set_decoding.SCORER_FILE))
    options = {"k": 2, "m": 3, "metric": "example_F1", "shift": True, "scorer": "method",
               "knn": knn}
    set_decoding.write_settings(str(run / set_decoding.SETTINGS_FILE), w, options,
                                decoding.LabelSetTable(SETS, COUNTS))
    return run, options


def _numpy_decoded(run, x, p, thresholds):
    """The numpy decoding of inputs ``x`` with probabilities ``p``, the
    scorer loaded again (as mltf.evaluate and mltf.predict do)."""
    dataset = tf.data.Dataset.from_tensor_slices((x, p)).batch(len(p))
    return set_decoding.decode_saved_sets(str(run), dataset, p, thresholds).astype(bool)


@pytest.mark.parametrize("make,w,knn,name", [(_critic, 30.0, 0, "CriticSetScorer"),
                                             (_embedding, 10.0, 2, "EmbeddingSetScorer")])
def test_export_decodes_with_the_methods_scorer(env, decoding_run, tmp_path,  # noqa: F811
                                                capsys, make, w, knn, name):
    files = decoding_run[1]  # the val images as files
    run, options = _scorer_run(env["tuned_file"], tmp_path, make, w, knn)
    out = tmp_path / "export"
    code, _, err = run_main(export, [f"--model={run}", f"--output_dir={out}",
                                     "--set_decoding"], capsys)
    assert code == 0, err
    info = json.loads((out / "export_info.json").read_text())
    assert info["set_decoding"] == {"w": w, "k": 2, "m": 3, "shift": True,
                                    "scorer": "method", "knn": knn, "scorer_class": name}
    code, stdout, err = run_main(predict, [f"--model={run}", "--format=json",
                                           "--set_decoding"] + files, capsys)
    assert code == 0, err
    predicted = np.array([[n in e["decoded"] for n in LABELS] for e in json.loads(stdout)])
    loaded = tf.saved_model.load(str(out / "saved_model"))
    encoded = [open(f, "rb").read() for f in files]
    got = loaded.signatures["serving_default"](images=tf.constant(encoded))
    decoded = got["decoded"].numpy()
    np.testing.assert_array_equal(decoded, predicted)
    assert (decoded != got["predicted"].numpy()).any(axis=1).sum() >= 2  # the scorer decides
    raw, _ = independent_inputs(encoded)
    by_tensor = loaded.signatures["serve_tensors"](images=tf.constant(raw, tf.float32))
    spec = inference.load_for_inference(str(run))[2]
    x = inference.preprocess_batch(tf.constant(raw, tf.float32), spec).numpy()
    p = by_tensor["probabilities"].numpy()
    np.testing.assert_array_equal(by_tensor["decoded"].numpy(),
                                  _numpy_decoded(run, x, p, env["tuned"]))
    if knn:  # the kNN candidates are in the graph: without them numpy decodes otherwise
        set_decoding.write_settings(str(run / set_decoding.SETTINGS_FILE), w,
                                    dict(options, knn=0), decoding.LabelSetTable(SETS, COUNTS))
        assert (_numpy_decoded(run, x, p, env["tuned"])
                != by_tensor["decoded"].numpy()).any(axis=1).sum() >= 1
