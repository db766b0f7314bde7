"""mltf.metrics.demo (recall of faint and occluded demo digits, predicted
pairs across themes): a hand-computed case, the generator's own scenes, and
mltf.evaluate on a demo dataset against the scenes drawn again by the test."""

import json

import numpy as np
import pytest

from conftest import read_records
from mltf import evaluate
from mltf.data import sources, writer
from mltf.data.sources import SourceOptions, demo_source
from mltf.metrics import demo
from test_inference import build_model, independent_inputs, model_scores, run_main

N, F, OC = demo_source.NORMAL, demo_source.FAINT, demo_source.OCCLUDED


def multi_hot(sets):
    out = np.zeros((len(sets), 10))
    for row, labels in enumerate(sets):
        out[row, labels] = 1
    return out


# Scenes (labels: 0 zero ... 9 nine) and their digits (label, state):
#   row  true       digits                      predicted
#   0    {1, 7}     one N, seven F              {1}          (the faint seven missed)
#   1    {0, 6, 2}  zero N, six O, two N        {0, 6, 4}    (two missed, four added)
#   2    {3, 8}     three F, eight N            {3, 8}
#   3    {9}        nine O                      {9, 1}
# Recall: normal 3/4 (two missed), faint 1/2, occluded 2/2.
# Pairs: predicted {0,6} in, {0,4} {6,4} across, {3,8} in (nines), {9,1} across: 3/5;
#        true {1,7} {0,6} {3,8} in, {0,2} {6,2} across: 2/5.
Y = multi_hot([[1, 7], [0, 6, 2], [3, 8], [9]])
S = multi_hot([[1], [0, 6, 4], [3, 8], [9, 1]]) * 0.8 + 0.1
ROWS, LABELS, STATES = zip(*[(0, 1, N), (0, 7, F), (1, 0, N), (1, 6, OC), (1, 2, N),
                             (2, 3, F), (2, 8, N), (3, 9, OC)])


def test_hand_computed_case():
    d = demo.demo_diagnostics(Y, S, ROWS, LABELS, STATES)
    assert d == pytest.approx({"recall_normal": 3 / 4, "recall_faint": 1 / 2,
                               "recall_occluded": 1.0, "cross_theme_rate_pred": 3 / 5,
                               "cross_theme_rate_true": 2 / 5, "num_normal": 4,
                               "num_faint": 2, "num_occluded": 2, "num_pairs_pred": 5,
                               "num_pairs_true": 5})
    with pytest.raises(ValueError, match="not in its scene's true set"):
        demo.demo_diagnostics(Y, S, (0,), (2,), (N,))
    none = demo.demo_diagnostics(Y[3:], S[3:] * 0, (0,), (9,), (OC,))
    assert none["recall_occluded"] == 0 and np.isnan(none["recall_faint"])
    assert np.isnan(none["cross_theme_rate_pred"]) and none["num_pairs_pred"] == 0


def test_themes():
    within = demo.same_theme()
    # three and eight belong to two themes each; one and two to none together.
    assert within[3, 8] and within[3, 2] and within[8, 0] and within[9, 3]
    assert not within[2, 1] and not within[9, 0] and (within == within.T).all()
    assert within.sum() == 10 + 2 * 4 * 3  # the diagonal, 3 pairs in each of 4 themes


def test_the_generators_scenes_and_a_perfect_predictor():
    scenes = demo_source.generate(demo_source.Options(demo_num_train=0, demo_num_val=300,
                                                      demo_image_size=24, seed=5))["val"]
    y = multi_hot(scenes.labels)
    d = demo.demo_diagnostics(y, y, scenes.object_scene, scenes.object_label,
                              scenes.object_state)
    assert d["recall_normal"] == d["recall_faint"] == d["recall_occluded"] == 1
    assert d["cross_theme_rate_pred"] == d["cross_theme_rate_true"]
    assert d["num_normal"] + d["num_faint"] + d["num_occluded"] == y.sum()
    # Only the outside label (P = 0.10) crosses themes: a few percent of pairs.
    assert 0 < d["cross_theme_rate_true"] < 0.15


def test_evaluate_on_a_demo_dataset(tmp_path, capsys):
    args = {"demo_num_train": 8, "demo_num_val": 20, "demo_image_size": 32, "seed": 4}
    data = sources.load("demo", SourceOptions(**args))
    writer.write_dataset(data, str(tmp_path / "ds"), source_name="demo",
                         arguments={**args, "num_shards": 2}, num_shards=2, progress=False)
    model = build_model(demo_source.LABEL_NAMES)
    model.save(tmp_path / "m.keras")
    code, stdout, _ = run_main(evaluate, [f"--model={tmp_path / 'm.keras'}",
                                          f"--data_dir={tmp_path / 'ds'}"], capsys)
    assert code == 0 and "Demo digits (%): recall of normal / faint / occluded" in stdout
    got = json.loads((tmp_path / "eval_val.json").read_text())["demo"]
    # The test's own path: records by id, the scenes drawn again, digit by digit.
    _, records = read_records(str(tmp_path / "ds"), "val")
    _, x = independent_inputs([r["encoded"] for r in records])
    scores = dict(zip([r["id"] for r in records], model_scores(model, x)))
    scenes = demo_source.generate(demo_source.Options(**args))["val"]
    found = {N: [], F: [], OC: []}
    for scene, label, state in zip(scenes.object_scene, scenes.object_label,
                                   scenes.object_state):
        found[state].append(scores[f"demo-val-{scene:05d}"][label] >= 0.5)
    for name, state in (("normal", N), ("faint", F), ("occluded", OC)):
        assert got[f"num_{name}"] == len(found[state])
        assert got[f"recall_{name}"] == pytest.approx(np.mean(found[state]), nan_ok=True)
    assert 0 < got["recall_normal"] < 1  # the random model finds some digits, not all
    # Another dataset (no recorded demo source) has none.
    assert "demo" not in evaluate.evaluate(str(tmp_path / "m.keras"), _plain(tmp_path, data))


def _plain(tmp_path, data):
    writer.write_dataset(data, str(tmp_path / "plain"), progress=False)
    return str(tmp_path / "plain")
