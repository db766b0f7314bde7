"""``mltf.train.set_decoding``: the report, the run folder's files, and the
decoded sets against independent references: the thresholded sets, and
threshold 0.5 on the saved scores (every set of the 3 labels is a
candidate, so the unshifted likelihood's choice is ``p >= 0.5``)."""

import json

import keras
import numpy as np
import pytest

import pipelines
from conftest import train_in_process
from test_train import _tiny_arff
from mltf import decoding, evaluate, methods, metrics
from mltf.methods import scoring
from mltf.training import set_decoding

SET_KEYS = ("example_F1", "subset_accuracy", "jaccard", "CF1", "OF1")


def _bindings(data_dir, *extra):
    return [f"pipelines.InputConfig.data_dir = '{data_dir}'",
            "pipelines.InputConfig.batch_size = 8",
            "mltf.build_backbone.hidden_sizes = (16,)",
            "mltf.build_backbone.embedding_dim = 8",
            "mltf.train.epochs = 1",
            "mltf.train.select_fraction = 0.25",
            "mltf.train.set_decoding = True", *extra]


def _likeliest_set_metrics(run):
    """Set metrics of the likeliest set of each image under its marginals,
    ``p >= 0.5``, from ``predictions.npz``."""
    saved = np.load(run / "predictions.npz")
    return saved, metrics.compute_all(saved["labels"], saved["scores"], 0.5)


def test_bce_decodes_by_likelihood_alone(tmp_path):
    data_dir = _tiny_arff(tmp_path)
    run = tmp_path / "bce"
    train_in_process("mulan_scene_mlp_retdm.gin", run,
                     _bindings(data_dir, "mltf.train.method = 'bce'"))
    report = json.loads((run / "metrics.json").read_text())
    entry = report["metrics_set_decoded"]
    # No dependency model: only w = 0, and with k = 3 of 3 labels every set is
    # a candidate; the likelihood shifted to the thresholds picks the
    # thresholded set, so the sets are those of metrics_tuned.
    assert entry["scorer"] is None and entry["grid"] == [0.0] and entry["w"] == 0.0
    assert entry["candidates_per_image"] == 8.0 and entry["changed_sets"] == 0.0
    for key in SET_KEYS:
        assert entry["metrics"][key] == report["metrics_tuned"][key], key
    assert not (run / set_decoding.SCORER_FILE).exists()
    assert float(np.load(run / set_decoding.SETTINGS_FILE)["w"]) == 0.0
    saved = np.load(run / "predictions.npz")  # the decoded sets: the thresholded ones
    thresholds = np.asarray(report["thresholds"], np.float32)
    assert saved["decoded"].dtype == bool
    assert saved["decoded"].tolist() == (saved["scores"] >= thresholds).tolist()
    # mltf.evaluate decodes again from the run folder, at the run's thresholds.
    again = evaluate.evaluate(str(run), data_dir, "test", thresholds="model", train_split="",
                              set_decoding=True)["metrics_set_decoded"]
    assert again["metrics"] == entry["metrics"] and again["w"] == 0.0
    (run / set_decoding.SETTINGS_FILE).unlink()  # as in a run without set_decoding
    with pytest.raises(evaluate.EvaluationError, match="set_decoding = True"):
        evaluate.evaluate(str(run), data_dir, "test", train_split="", set_decoding=True)


def test_bce_decodes_with_the_label_set_prior_and_evaluate_reproduces_it(tmp_path):
    data_dir = _tiny_arff(tmp_path)
    run = tmp_path / "prior"
    train_in_process("mulan_scene_mlp_retdm.gin", run, _bindings(
        data_dir, "mltf.train.method = 'bce'", "mltf.set_decoding_options.scorer = 'prior'",
        "mltf.set_decoding_options.metric = 'subset_accuracy'"))
    report = json.loads((run / "metrics.json").read_text())
    entry = report["metrics_set_decoded"]
    assert entry["scorer"] == "LabelSetPrior" and entry["grid"] == list(decoding.DEFAULT_GRID)
    figures = [f["subset_accuracy"] for f in entry["selection"]]
    best = entry["grid"].index(entry["w"])
    assert figures[best] == max(figures) and max(figures[:best], default=-1) < figures[best]
    assert not (run / set_decoding.SCORER_FILE).exists()
    settings = np.load(run / set_decoding.SETTINGS_FILE)
    assert str(settings["scorer"]) == "prior" and float(settings["w"]) == entry["w"]
    # The counts are those of the training part (the split less the selection ids).
    select = set((run / "select_ids.txt").read_text().split())
    train = [row for i, row in _split_rows(data_dir) if i not in select]
    sets, counts = settings["sets"], settings["counts"]
    assert int(counts.sum()) == len(train)
    for s, c in zip(sets, counts):
        assert sum(row == s.tolist() for row in train) == c
    # The saved decoded sets are the argmax of loglik + w log(1 + count), by hand.
    saved = np.load(run / "predictions.npz")
    thresholds = np.asarray(report["thresholds"], np.float32)
    count = {tuple(s): int(c) for s, c in zip(sets.tolist(), counts)}
    q = decoding.shift_to_thresholds(saved["scores"], thresholds)
    table = decoding.LabelSetTable(sets, counts)
    cands = decoding.candidate_sets(saved["scores"], thresholds, table)
    for i, image in enumerate(cands.sets):
        score = [sum(np.log(q[i, j]) if y else np.log(1 - q[i, j]) for j, y in enumerate(s))
                 + entry["w"] * np.log1p(count.get(tuple(s.tolist()), 0))
                 for s, ok in zip(image, cands.valid[i]) if ok]
        kept = image[cands.valid[i]]
        assert saved["decoded"][i].tolist() == kept[int(np.argmax(score))].astype(bool).tolist()
    got = decoding.evaluate_sets(saved["labels"], saved["scores"], saved["decoded"])
    assert got == entry["metrics"]
    again = evaluate.evaluate(str(run), data_dir, "test", thresholds="model", train_split="",
                              set_decoding=True)["metrics_set_decoded"]
    assert again["metrics"] == entry["metrics"] and again["scorer"] == "LabelSetPrior"


def _split_rows(data_dir):
    """``(id, labels)`` of every example of the training split, from its records."""
    dataset = pipelines.make_dataset(pipelines.InputConfig(
        data_dir=data_dir, split="train", batch_size=64, training=False, with_ids=True))
    return [(i.decode(), y.astype(int).tolist()) for x, labels in dataset
            for i, y in zip(x["ids"].numpy(), labels.numpy())]


@pytest.mark.slow  # 40 s on 2 cores: BCE pretraining, then the critic
def test_wgan_gp_chooses_w_and_saves_what_decoding_again_needs(tmp_path):
    data_dir = _tiny_arff(tmp_path)
    run = tmp_path / "gan"
    train_in_process("mulan_scene_mlp_retdm.gin", run, _bindings(
        data_dir, "mltf.train.method = 'wgan_gp'", "mltf.train.pretrain_epochs = 1",
        "mltf.train.diagnostic_images = 0", "mltf.build_critic.depth = 1",
        "mltf.build_critic.hidden_dim = 8", "mltf.build_critic.projection_dim = 4"))
    report = json.loads((run / "metrics.json").read_text())
    entry = report["metrics_set_decoded"]
    assert entry["scorer"] == "CriticSetScorer" and entry["metric"] == "example_F1"
    assert entry["grid"] == list(decoding.DEFAULT_GRID) and entry["w"] in entry["grid"]
    figures = [f["example_F1"] for f in entry["selection"]]
    best = entry["grid"].index(entry["w"])
    assert figures[best] == max(figures) and max(figures[:best], default=-1) < figures[best]
    assert set(entry["metrics"]) == set(report["metrics"])
    # Decoding again from the run folder alone gives the reported sets.
    saved, likeliest = _likeliest_set_metrics(run)
    settings = np.load(run / set_decoding.SETTINGS_FILE)
    assert float(settings["w"]) == entry["w"]
    scorer = keras.models.load_model(run / set_decoding.SCORER_FILE)
    assert isinstance(scorer, scoring.CriticSetScorer)
    thresholds = np.asarray(report["thresholds"], np.float32)
    table = decoding.LabelSetTable(settings["sets"], settings["counts"])
    cands = decoding.candidate_sets(saved["scores"], thresholds, table, int(settings["k"]),
                                    int(settings["m"]))
    dataset = pipelines.make_dataset(pipelines.InputConfig(
        data_dir=data_dir, split="test", batch_size=5, training=False))
    dep = scoring.dependency_scores(scorer, dataset, cands.sets)
    loglik = decoding.log_likelihood(saved["scores"], cands.sets, thresholds)

    def decoded(w):
        return decoding.evaluate_sets(saved["labels"], saved["scores"], decoding.chosen_sets(
            cands, decoding.decode(loglik, dep, cands.valid, w)))

    got = decoded(entry["w"])
    for key in SET_KEYS + ("mAP",):
        np.testing.assert_allclose(got[key], entry["metrics"][key], rtol=1e-6, err_msg=key)
    # At w = 0 the critic is ignored: the likeliest set, the thresholded one
    # (shifted likelihood) or p >= 0.5 (raw).
    for key in SET_KEYS:
        assert decoded(0.0)[key] == report["metrics_tuned"][key], key
    raw = decoding.log_likelihood(saved["scores"], cands.sets)
    sets = decoding.chosen_sets(cands, decoding.decode(raw, dep, cands.valid, 0.0))
    for key in SET_KEYS:
        assert decoding.evaluate_sets(saved["labels"], saved["scores"], sets)[key] == \
            likeliest[key], key
    again = evaluate.evaluate(str(run), data_dir, "test", thresholds="model", train_split="",
                              set_decoding=True)["metrics_set_decoded"]
    for key in SET_KEYS + ("mAP",):
        np.testing.assert_allclose(again["metrics"][key], entry["metrics"][key], rtol=1e-6)


def _retdm_run(tmp_path, *bindings):
    """(the tiny arff data folder, the folder of a two-epoch RETDM run on it
    with ``bindings``)."""
    data_dir = _tiny_arff(tmp_path)
    run = tmp_path / "retdm"
    train_in_process("mulan_scene_mlp_retdm.gin", run, _bindings(
        data_dir, "mltf.build_retdm.label_units = 8", "mltf.build_retdm.k = 3",
        "mltf.build_retdm.classification_epochs = 1", "mltf.train.epochs = 2", *bindings))
    return data_dir, run


@pytest.mark.slow  # 30 s on 2 cores: two RETDM epochs
def test_retdm_decodes_with_its_embedding_distance(tmp_path):
    _, run = _retdm_run(tmp_path)
    entry = json.loads((run / "metrics.json").read_text())["metrics_set_decoded"]
    assert entry["scorer"] == "EmbeddingSetScorer" and entry["w"] in entry["grid"]
    scorer = keras.models.load_model(run / set_decoding.SCORER_FILE)
    assert isinstance(scorer, scoring.EmbeddingSetScorer)
    assert scorer.image_embedder.name == "mlp"


def test_knn_without_a_label_embedding_fails_before_training(tmp_path):
    data_dir = _tiny_arff(tmp_path)
    with pytest.raises(methods.SettingsError, match="knn = 2 needs"):
        train_in_process("mulan_scene_mlp_retdm.gin", tmp_path / "bce", _bindings(
            data_dir, "mltf.train.method = 'bce'", "mltf.set_decoding_options.knn = 2"))
    assert not (tmp_path / "bce" / "metrics.json").exists()


@pytest.mark.slow  # 30 s on 2 cores: two RETDM epochs
def test_retdm_knn_candidates_are_saved_and_decoded_again(tmp_path):
    data_dir, run = _retdm_run(tmp_path, "mltf.set_decoding_options.k = 1",
                               "mltf.set_decoding_options.m = 1",
                               "mltf.set_decoding_options.knn = 2")
    report = json.loads((run / "metrics.json").read_text())
    entry = report["metrics_set_decoded"]
    assert entry["knn"] == 2 and int(np.load(run / set_decoding.SETTINGS_FILE)["knn"]) == 2
    # The candidates by hand: 2 flips, the likeliest set, the 2 nearest sets
    # under the saved scorer's embedding, repeats counted once.
    saved = np.load(run / "predictions.npz")
    settings = set_decoding.read_settings(str(run))
    scorer = keras.models.load_model(run / set_decoding.SCORER_FILE)
    dataset = pipelines.make_dataset(pipelines.InputConfig(
        data_dir=data_dir, split="test", batch_size=5, training=False))
    thresholds = np.asarray(report["thresholds"], np.float32)
    nearest = scoring.nearest_sets(scorer, dataset, settings["table"].sets, 2)
    cands = decoding.candidate_sets(saved["scores"], thresholds, settings["table"], 1, 1,
                                    True, nearest)
    assert cands.sets.shape[1] == 5
    assert entry["candidates_per_image"] == pytest.approx(cands.valid.sum(axis=1).mean())
    dep = scoring.dependency_scores(scorer, dataset, cands.sets)
    loglik = decoding.log_likelihood(saved["scores"], cands.sets, thresholds)
    sets = decoding.chosen_sets(cands, decoding.decode(loglik, dep, cands.valid, entry["w"]))
    assert saved["decoded"].tolist() == sets.astype(bool).tolist()
    again = evaluate.evaluate(str(run), data_dir, "test", thresholds="model", train_split="",
                              set_decoding=True)["metrics_set_decoded"]
    assert again["knn"] == 2 and again["metrics"] == entry["metrics"]
