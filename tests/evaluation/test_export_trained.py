"""``mltf.export --set_decoding`` of real trained runs: a tiny WGAN-gp run
(the critic's ``CriticSetScorer``) and a tiny RETDM run (``EmbeddingSetScorer``
with kNN candidates) trained by ``mltf.train`` with
``mltf.train.set_decoding = True``; the SavedModel, loaded in a fresh Python
that never imports mltf, decodes the sets that ``mltf.predict --set_decoding``
and the numpy decoding (``set_decoding.decode_saved_sets``) choose for the
same images. The hand-built scorers of test_export_scorer.py check the graph;
this checks what a training run writes (``set_scorer.keras``, its
sub-models as trained, ``set_decoding.npz``) against it."""

import json
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

from conftest import tiny_bindings, train_in_process, write_split_images
from test_inference import run_main
from mltf import export, inference, predict
from mltf.training import set_decoding

# Tiny runs choose w = 0 on their selection split (the critic and the
# embedding barely trained), which never calls the scorer: the test decodes
# at this w instead (written over the chosen one), large enough that the
# scorer moves sets away from the thresholded ones.
W = 3.0
COMMON = {"mltf.train.set_decoding": True, "mltf.set_decoding_options.scorer": "'method'",
          "mltf.set_decoding_options.grid": [W], "mltf.set_decoding_options.k": 2,
          "mltf.set_decoding_options.m": 3, "mltf.train.diagnostic_images": 0,
          "mltf.train.xla": False}
RUNS = {
    "wgan_gp": ("demo_wgangp.gin", "CriticSetScorer", 0, {
        "mltf.train.initial_model": None, "mltf.train.pretrain_epochs": 1,
        "mltf.train.epochs": 1, "mltf.train.steps_per_epoch": 1,
        "mltf.build_critic.depth": 1, "mltf.build_critic.hidden_dim": 8,
        "mltf.build_critic.projection_dim": 4, "pipelines.InputConfig.batch_size": 4}),
    "retdm": ("miml_scene_small_cnn_retdm.gin", "EmbeddingSetScorer", 2, {
        "mltf.build_backbone.embedding_dim": 16, "mltf.build_retdm.label_units": 16,
        "mltf.build_retdm.classification_epochs": 1, "mltf.build_retdm.embedding_epochs": 0,
        "mltf.train.epochs": 2, "mltf.train.steps_per_epoch": 2,
        "mltf.set_decoding_options.knn": 2}),
}

# Loads the SavedModel and decodes the files named on the command line; fails
# if serving needed mltf.
SERVE = """
import json, sys
import tensorflow as tf
loaded = tf.saved_model.load(sys.argv[1])
data = tf.constant([open(f, "rb").read() for f in sys.argv[2:]])
out = loaded.signatures["serving_default"](images=data)
assert "mltf" not in sys.modules, "serving imported mltf"
print(json.dumps({k: out[k].numpy().tolist() for k in ("probabilities", "decoded")}))
"""


@pytest.mark.slow  # 35 s of CPU each (170-280 s on 2 busy shared cores): training, export
@pytest.mark.parametrize("method", sorted(RUNS))
def test_export_of_a_trained_run_decodes_as_predict(method, demo_dir, tmp_path, capsys):
    config, scorer_class, knn, extra = RUNS[method]
    run = tmp_path / "run"
    train_in_process(config, run, tiny_bindings(demo_dir, **COMMON, **extra))
    entry = json.loads((run / "metrics.json").read_text())["metrics_set_decoded"]
    assert entry["scorer"] == scorer_class and entry["knn"] == knn
    assert entry["grid"] == [0.0, W]
    settings = set_decoding.read_settings(str(run))
    assert settings["scorer"] == "method" and settings["knn"] == knn
    set_decoding.write_settings(str(run / set_decoding.SETTINGS_FILE), W, settings,
                                settings["table"])
    assert set_decoding.read_settings(str(run))["w"] == W

    out = tmp_path / "export"
    code, _, err = run_main(export, [f"--model={run}", f"--output_dir={out}",
                                     "--set_decoding"], capsys)
    assert code == 0, err
    info = json.loads((out / "export_info.json").read_text())["set_decoding"]
    assert info == {"w": W, "k": 2, "m": 3, "shift": True, "scorer": "method", "knn": knn,
                    "scorer_class": scorer_class}

    records, files = write_split_images(demo_dir, "val", tmp_path / "images")
    code, stdout, err = run_main(predict, [f"--model={run}", "--format=json", "--set_decoding",
                                           f"--batch_size={len(files)}"] + files, capsys)
    assert code == 0, err
    entries = json.loads(stdout)
    names = inference.load_for_inference(str(run))[2].label_names
    predicted = np.array([[n in e["decoded"] for n in names] for e in entries])
    thresholded = np.array([[n in e["predicted"] for n in names] for e in entries])
    p = np.array([[e["scores"][n] for n in names] for e in entries], np.float32)

    served = subprocess.run([sys.executable, "-c", SERVE, str(out / "saved_model"), *files],
                            capture_output=True, text=True, timeout=300)
    assert served.returncode == 0, served.stderr[-3000:]
    got = json.loads(served.stdout.strip().splitlines()[-1])
    np.testing.assert_allclose(got["probabilities"], p, atol=1e-6)
    decoded = np.array(got["decoded"])
    np.testing.assert_array_equal(decoded, predicted)
    assert (decoded != thresholded).any(axis=1).sum() >= 2  # the scorer moved sets

    # The numpy decoding of the same model inputs (the pipeline's decode and
    # resize), the scorer as saved by the run.
    model, _, spec = inference.load_for_inference(str(run))
    x = tf.stack([inference.decode_and_resize(tf.constant(r["encoded"]), spec)
                  for r in records])
    x = inference.preprocess_batch(x, spec)
    p_x = np.asarray(model(x, training=False))
    np.testing.assert_allclose(p_x, p, atol=1e-6)
    dataset = tf.data.Dataset.from_tensor_slices((x, p_x)).batch(len(p_x))
    numpy_sets = set_decoding.decode_saved_sets(str(run), dataset, p_x, spec.thresholds)
    np.testing.assert_array_equal(numpy_sets.astype(bool), decoded)
    # set_scorer.keras restores the trained weights, on which all three paths
    # rely: loaded under two seeds it scores alike (freshly initialised
    # sub-models would not).
    candidates = tf.constant(numpy_sets[:, None, :], tf.float32)
    scores = []
    for seed in (1, 2):
        keras.utils.set_random_seed(seed)
        scorer = set_decoding.load_saved(str(run))[1]
        scores.append(np.asarray(scorer.score(scorer.embed(x), candidates)))
    np.testing.assert_array_equal(scores[0], scores[1])
