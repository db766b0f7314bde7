"""``mltf.decode``: set-level decoding of a finished run chosen again on its
selection split, against the end of the run's own decoding (same options:
the same ``w``, figures and sets) and against the decoding written out by
hand (``argmax`` of the shifted log-likelihood plus ``w log(1 + count)``
over the training part's sets)."""

import json

import gin
import keras
import numpy as np
import pytest

from conftest import run_main, train_in_process
from test_set_decoding import SET_KEYS, _bindings, _split_rows
from test_train import _tiny_arff
from mltf import decode, decoding, evaluate
from mltf.methods import scoring
from mltf.training import redecode, set_decoding


def _decode(run, capsys, *bindings, extra=()):
    """``mltf.decode`` in-process on ``run``: (exit code, stdout, stderr)."""
    try:
        return run_main(decode, [f"--run_dir={run}", *extra,
                                 *(f"--gin_bindings={b}" for b in bindings)], capsys)
    finally:
        gin.clear_config()


@pytest.fixture(scope="module")
def bce_run(tmp_path_factory):
    """(data folder, a tiny BCE run folder trained without set decoding)."""
    tmp = tmp_path_factory.mktemp("redecode")
    data_dir = _tiny_arff(tmp)
    run = tmp / "bce"
    train_in_process("mulan_scene_mlp_retdm.gin", run, _bindings(
        data_dir, "mltf.train.method = 'bce'", "mltf.train.set_decoding = False"))
    return data_dir, run


def test_a_run_trained_without_decoding_decodes_with_the_prior_by_hand(bce_run, capsys):
    data_dir, run = bce_run
    assert not (run / set_decoding.SETTINGS_FILE).exists()
    # The grid is 0 and 2; which wins depends on the tiny run, so both are
    # checked by hand on the selection split, the chosen one on the test split.
    code, out, err = _decode(run, capsys, "mltf.set_decoding_options.scorer = 'prior'",
                             "mltf.set_decoding_options.grid = [2.0]",
                             "mltf.set_decoding_options.metric = 'subset_accuracy'",
                             extra=["--save"])
    assert code == 0, err
    report = json.loads((run / "decode.json").read_text())
    entry = report["metrics_set_decoded"]
    assert entry["scorer"] == "LabelSetPrior" and entry["grid"] == [0.0, 2.0]
    assert report["method"] == "bce" and report["checkpoint"] == "last"
    assert f"decoded (w={entry['w']:g})" in out and "Set-level decoding (LabelSetPrior)" in out
    saved = np.load(run / "decode.npz")
    trained = json.loads((run / "metrics.json").read_text())
    predictions = np.load(run / "predictions.npz")
    assert saved["ids"].tolist() == predictions["ids"].tolist()
    np.testing.assert_allclose(saved["scores"], predictions["scores"], rtol=1e-6, atol=1e-7)
    # By hand: the training part's set counts, the shifted marginals' likelihood.
    select = set((run / "select_ids.txt").read_text().split())
    counts = {}
    for i, row in _split_rows(data_dir):
        if i not in select:
            counts[tuple(row)] = counts.get(tuple(row), 0) + 1
    thresholds = np.asarray(trained["thresholds"], np.float32)
    table = decoding.LabelSetTable(np.array(list(counts), np.uint8),
                                   np.array(list(counts.values())))

    def by_hand(p, w):
        q = decoding.shift_to_thresholds(p, thresholds)
        cands = decoding.candidate_sets(p, thresholds, table)
        out = []
        for i, image in enumerate(cands.sets):
            kept = image[cands.valid[i]]
            score = [sum(np.log(q[i, j]) if y else np.log(1 - q[i, j])
                         for j, y in enumerate(s))
                     + w * np.log1p(counts.get(tuple(s.tolist()), 0)) for s in kept]
            out.append(kept[int(np.argmax(score))].astype(bool).tolist())
        return np.array(out)

    _, y_sel, p_sel = redecode.FinishedRun(str(run)).select
    assert len(y_sel) == len(select)
    for figure in entry["selection"]:
        sets = by_hand(p_sel, figure["w"])
        assert figure["subset_accuracy"] == pytest.approx((sets == y_sel).all(axis=1).mean())
    assert saved["decoded"].tolist() == by_hand(saved["scores"], entry["w"]).tolist()
    got = decoding.evaluate_sets(saved["labels"], saved["scores"], saved["decoded"])
    assert got == entry["metrics"]
    for key in SET_KEYS:
        assert report["metrics_tuned"][key] == trained["metrics_tuned"][key], key
    # --save: mltf.evaluate --set_decoding now decodes as mltf.decode chose.
    again = evaluate.evaluate(str(run), data_dir, "test", thresholds="model", train_split="",
                              set_decoding=True)["metrics_set_decoded"]
    assert again["metrics"] == entry["metrics"] and again["w"] == entry["w"]


def test_thresholds_chosen_again_on_the_selection_split(bce_run, tmp_path, capsys):
    from mltf import metrics
    _, run = bce_run
    code, _, err = _decode(run, capsys, extra=["--thresholds=global",
                                               f"--output={tmp_path / 'g.json'}"])
    assert code == 0, err
    report = json.loads((tmp_path / "g.json").read_text())
    again = redecode.FinishedRun(str(run))
    want = metrics.choose_thresholds(*again.select[1:], mode="global")[0]
    np.testing.assert_allclose(report["thresholds"], want, rtol=1e-6)
    assert len(set(report["thresholds"])) == 1  # one threshold for every class
    _, y, p = again.evaluate
    tuned = metrics.compute_all(y, p, threshold=np.asarray(want, np.float32))
    for key in SET_KEYS:
        assert report["metrics_tuned"][key] == pytest.approx(tuned[key]), key
    # BCE decodes by the likelihood alone: the decoded sets are the global ones.
    assert report["metrics_set_decoded"]["metrics"]["subset_accuracy"] == \
        pytest.approx(tuned["subset_accuracy"])


def test_a_run_without_a_selection_split_decodes_on_its_reported_split(tmp_path, capsys):
    data_dir = _tiny_arff(tmp_path)
    run = tmp_path / "uncarved"
    train_in_process("mulan_scene_mlp_retdm.gin", run, _bindings(
        data_dir, "mltf.train.method = 'bce'", "mltf.train.set_decoding = False",
        "mltf.train.select_fraction = 0.0"))
    code, _, err = _decode(run, capsys)
    assert code == 0, err
    assert "carved no selection split" in err and "optimistic" in err
    report = json.loads((run / "decode.json").read_text())
    # The thresholded sets "on the selection split" are the reported split's.
    entry = report["metrics_set_decoded"]
    assert entry["selection_thresholded"] == pytest.approx(
        report["metrics_tuned"]["example_F1"])


def test_user_errors_exit_2_and_write_nothing(bce_run, tmp_path, capsys):
    _, run = bce_run
    code, _, err = _decode(tmp_path, capsys)
    assert code == 2 and "not a finished run folder: no metrics.json" in err
    code, _, err = _decode(run, capsys, "mltf.set_decoding_options.knn = 3",
                           extra=[f"--output={tmp_path / 'x.json'}"])
    assert code == 2 and "knn = 3 needs a method whose dependency model embeds" in err
    code, _, err = _decode(run, capsys, "mltf.set_decoding_options.scorer = 'critic'",
                           extra=[f"--output={tmp_path / 'x.json'}"])
    assert code == 2 and "scorer must be one of" in err
    code, _, err = _decode(run, capsys, extra=["--checkpoint=first",
                                               f"--output={tmp_path / 'x.json'}"])
    assert code == 2 and "--checkpoint must be best or last" in err
    code, _, err = _decode(run, capsys, extra=["--thresholds=global", "--save",
                                               f"--output={tmp_path / 'x.json'}"])
    assert code == 2 and "--save decodes at the model's own thresholds" in err
    assert not (tmp_path / "x.json").exists()


@pytest.mark.slow  # 40-60 s on 2 cores: a tiny WGAN-gp or RETDM run
@pytest.mark.parametrize("method,extra", [
    ("wgan_gp", ("mltf.train.pretrain_epochs = 1", "mltf.train.diagnostic_images = 0",
                 "mltf.build_critic.depth = 1", "mltf.build_critic.hidden_dim = 8",
                 "mltf.build_critic.projection_dim = 4")),
    ("retdm", ("mltf.build_retdm.label_units = 8", "mltf.build_retdm.k = 3",
               "mltf.build_retdm.classification_epochs = 1", "mltf.train.epochs = 2"))])
def test_the_method_scorer_from_the_checkpoint_decodes_as_the_run_did(tmp_path, capsys,
                                                                      method, extra):
    data_dir = _tiny_arff(tmp_path)
    run = tmp_path / method
    options = ["mltf.set_decoding_options.grid = [1.0, 100.0]"] + (
        ["mltf.set_decoding_options.knn = 2"] if method == "retdm" else [])
    train_in_process("mulan_scene_mlp_retdm.gin", run, _bindings(
        data_dir, f"mltf.train.method = '{method}'", *extra, *options))
    trained = json.loads((run / "metrics.json").read_text())["metrics_set_decoded"]
    assert trained["grid"] == [0.0, 1.0, 100.0]
    assert trained["scorer"] in ("CriticSetScorer", "EmbeddingSetScorer")
    code, _, err = _decode(run, capsys, *options)
    assert code == 0, err
    entry = json.loads((run / "decode.json").read_text())["metrics_set_decoded"]
    assert entry["w"] == trained["w"] and entry["scorer"] == trained["scorer"]
    assert entry["knn"] == trained["knn"]
    assert entry["candidates_per_image"] == trained["candidates_per_image"]
    # The selection figure at every w: the scorer's on the selection images.
    for again, first in zip(entry["selection"], trained["selection"], strict=True):
        np.testing.assert_allclose(again["example_F1"], first["example_F1"], rtol=1e-6)
    for key in SET_KEYS:
        np.testing.assert_allclose(entry["metrics"][key], trained["metrics"][key], rtol=1e-6,
                                   err_msg=key)
    decoded = np.load(run / "decode.npz")["decoded"]
    assert decoded.tolist() == np.load(run / "predictions.npz")["decoded"].tolist()
    # The scorer rebuilt from the checkpoint scores sets as the run's saved one.
    again = redecode.FinishedRun(str(run))
    saved = keras.models.load_model(run / set_decoding.SCORER_FILE, compile=False)
    cands = decoding.candidate_sets(again.evaluate[2], again.thresholds, again.table)
    dataset = again.evaluate[0]
    rebuilt = scoring.dependency_scores(again.scorer(), dataset, cands.sets)
    np.testing.assert_allclose(rebuilt, scoring.dependency_scores(saved, dataset, cands.sets),
                               rtol=1e-5, atol=1e-6)
    assert np.ptp(rebuilt[cands.valid]) > 0
