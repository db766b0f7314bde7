"""Set-level decoding in the exported graph (``mltf.decoding_graph``,
``mltf.export --set_decoding``) against ``mltf.decoding``'s numpy result, bit
for bit, ties included (the first slot of highest score wins)."""

import json

import numpy as np
import pytest
import tensorflow as tf

from test_inference import LABELS, env, independent_inputs, run_main  # noqa: F401
from test_predict_decoding import COUNTS, OPTIONS, SETS, W, decoding_run  # noqa: F401
from mltf import decoding, decoding_graph, export
from mltf.training import set_decoding


def numpy_decoded(p, t, table, w, k, m, shift, prior=True):
    cands = decoding.candidate_sets(p, t, table, k, m, shift)
    dep = decoding.prior_scores(table, cands.sets) if prior else None
    loglik = decoding.log_likelihood(p, cands.sets, t if shift else None)
    index = decoding.decode(loglik, dep, cands.valid, w)
    return decoding.chosen_sets(cands, index).astype(bool), cands, loglik, dep


# {sky} and {dog} equally frequent (5), both above the others.
TIE_SETS = np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0], [0, 0, 1], [1, 1, 0], [1, 1, 1]],
                    np.uint8)
TIE_COUNTS = np.array([1, 2, 5, 5, 1, 3])
THRESHOLDS = np.array([0.3, 0.6, 0.45], np.float32)


def _probabilities():
    rng = np.random.default_rng(0)
    p = rng.uniform(0.02, 0.98, (40, 3)).astype(np.float32)
    p[0] = THRESHOLDS  # q = 0.5 everywhere: all 8 sets equally likely
    p[1] = [THRESHOLDS[0], 0.9, THRESHOLDS[2]]  # two labels at their threshold
    p[2] = [1.0, 0.0, 0.5]  # saturated marginals (the clip)
    return p


@pytest.mark.parametrize("w,k,m,shift,prior", [
    (1.0, 3, 2, True, True), (0.3, 1, 3, False, True), (2.0, 2, 6, True, True),
    (0.0, 2, 4, True, True), (1.0, 2, 3, True, False), (1.0, 0, 0, True, True)])
def test_graph_decoding_is_numpys_bit_for_bit(w, k, m, shift, prior, tmp_path):
    p = _probabilities()
    table = decoding.LabelSetTable(TIE_SETS, TIE_COUNTS)
    want, cands, loglik, dep = numpy_decoded(p, THRESHOLDS, table, w, k, m, shift, prior)
    decoder = decoding_graph.SetDecoder(THRESHOLDS, table, w, k, m, shift, prior)
    run = tf.function(decoder, input_signature=[tf.TensorSpec([None, 3], tf.float32)])
    np.testing.assert_array_equal(run(tf.constant(p)).numpy(), want)
    if (w, k, m, prior) == (1.0, 3, 2, True):
        # Saved and loaded (the export's path: the hash table is a resource of
        # the SavedModel); once, as saving takes seconds.
        module = tf.Module()
        module.decoder = decoder
        module.decode = run
        tf.saved_model.save(module, str(tmp_path / "m"))
        loaded = tf.saved_model.load(str(tmp_path / "m"))
        np.testing.assert_array_equal(loaded.decode(tf.constant(p)).numpy(), want)
        # Image 0: every set is equally likely, so the prior decides, and
        # {dog} and {sky} tie at count 5: the earlier slot wins. The flip
        # order is the labels' (|logit q| = 0 for all), the thresholded set
        # {cat, dog, sky} first; {dog} (flip cat and sky, slot 5) comes
        # before {sky} (flip cat and dog, slot 6).
        score = np.where(cands.valid, loglik + w * dep, -np.inf)[0]
        best = np.flatnonzero(score == score.max())
        assert len(best) == 2
        assert {tuple(cands.sets[0, i]) for i in best} == {(0, 1, 0), (0, 0, 1)}
        assert want[0].tolist() == [False, True, False]


def test_graph_keeps_the_order_of_scores_and_thresholds_beyond_epsilon():
    t = np.array([7e-8, 1 - 1e-9, 0.5])
    p = np.array([[5e-10, 1 - 5e-10, 0.6], [9e-8, 1 - 2e-9, 0.4], [0.0, 1.0, 0.5]])
    table = decoding.LabelSetTable(TIE_SETS, TIE_COUNTS)
    for w, k, m in ((0.0, 3, 2), (1.0, 3, 2), (100.0, 1, 0)):
        want = numpy_decoded(p, t, table, w, k, m, True)[0]
        decoder = decoding_graph.SetDecoder(t, table, w, k, m, True, True)
        np.testing.assert_array_equal(decoder(tf.constant(p)).numpy(), want)
        if w == 0.0:
            assert want.tolist() == (p >= t).tolist()
    # k = 1 flips the label nearest its threshold in logit: sky (0.6 against
    # 0.5), not cat (5e-10 against 7e-8, which EPSILON's clip made q = 0.5);
    # the flip {dog} (count 5) then wins over the thresholded {dog, sky}.
    assert want[0].tolist() == [False, True, False]


def test_export_with_prior_decoding(env, decoding_run, tmp_path, capsys):  # noqa: F811
    run, files = decoding_run
    out = tmp_path / "export"
    code, stdout, err = run_main(export, [f"--model={run}", f"--output_dir={out}",
                                          "--set_decoding"], capsys)
    assert code == 0, err
    info = json.loads((out / "export_info.json").read_text())
    assert info["set_decoding"] == {"w": W, "knn": 0,
                                    **{k: OPTIONS[k] for k in ("k", "m", "shift", "scorer")}}
    assert info["signatures"]["serving_default"]["outputs"] == ["probabilities", "predicted",
                                                                "decoded"]
    loaded = tf.saved_model.load(str(out / "saved_model"))
    encoded = [open(f, "rb").read() for f in files]
    got = loaded.signatures["serving_default"](images=tf.constant(encoded))
    p = got["probabilities"].numpy()
    table = decoding.LabelSetTable(SETS, COUNTS)
    want = numpy_decoded(p, env["tuned"], table, W, OPTIONS["k"], OPTIONS["m"], True)[0]
    np.testing.assert_array_equal(got["decoded"].numpy(), want)
    assert (want != got["predicted"].numpy()).any()
    raw, _ = independent_inputs(encoded)
    by_tensor = loaded.signatures["serve_tensors"](images=tf.constant(raw, tf.float32))
    np.testing.assert_array_equal(by_tensor["decoded"].numpy(), numpy_decoded(
        by_tensor["probabilities"].numpy(), env["tuned"], table, W, OPTIONS["k"],
        OPTIONS["m"], True)[0])


def test_export_refuses_a_missing_file_and_knn_without_a_scorer(env, tmp_path,  # noqa: F811
                                                                 capsys):
    run = tmp_path / "run"
    run.mkdir()
    (run / "model.keras").write_bytes(open(env["tuned_file"], "rb").read())
    code, _, err = run_main(export, [f"--model={run}", f"--output_dir={tmp_path / 'a'}",
                                     "--set_decoding"], capsys)
    assert code == 2 and "set_decoding.npz not found" in err
    set_decoding.write_settings(str(run / set_decoding.SETTINGS_FILE), 1.0,
                                dict(OPTIONS, scorer="method", knn=2),
                                decoding.LabelSetTable(SETS, COUNTS))
    code, _, err = run_main(export, [f"--model={run}", f"--output_dir={tmp_path / 'b'}",
                                     "--set_decoding"], capsys)
    assert code == 2 and "kNN candidates" in err and set_decoding.SCORER_FILE in err
    assert not (tmp_path / "b").exists()
