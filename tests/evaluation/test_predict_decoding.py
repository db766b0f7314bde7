"""``mltf.predict --set_decoding``: the decoded sets of image files against a
hand computation of the decoding (every candidate scored by the formula),
and against ``mltf.evaluate --set_decoding`` on the same images (the
evaluation's set metrics are those of predict's sets)."""

import csv
import io
import json
import shutil

import numpy as np
import pytest

from conftest import write_split_images
from test_inference import LABELS, env, run_main, val_truth  # noqa: F401 (fixture)
from mltf import decoding, evaluate, predict
from mltf.training import set_decoding

# Every set of the 3 labels; {cat} far the most frequent, so a large w moves
# images towards it.
SETS = np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0], [0, 0, 1], [1, 1, 0], [1, 0, 1],
                 [0, 1, 1], [1, 1, 1]], np.uint8)
COUNTS = np.array([2, 50, 3, 1, 4, 1, 2, 1])
W = 3.0
OPTIONS = {"k": 2, "m": 3, "metric": "example_F1", "shift": True, "scorer": "prior"}


@pytest.fixture(scope="module")
def decoding_run(env, tmp_path_factory):  # noqa: F811 (the imported fixture)
    """A run folder with the tuned model and a prior decoding, and the val
    images written as files (in record order)."""
    root = tmp_path_factory.mktemp("decoding_run")
    run = root / "run"
    run.mkdir()
    shutil.copy(env["tuned_file"], run / "model.keras")
    set_decoding.write_settings(str(run / set_decoding.SETTINGS_FILE), W, OPTIONS,
                                decoding.LabelSetTable(SETS, COUNTS))
    return run, write_split_images(env["data_dir"], "val", root / "images")[1]


def _by_hand(p, thresholds):
    """The decoded sets by the module docstring's formula, each candidate
    scored on its own: loglik of q plus W log(1 + count), first best slot."""
    q = decoding.shift_to_thresholds(p, thresholds)
    count = {tuple(s): int(c) for s, c in zip(SETS.tolist(), COUNTS)}
    cands = decoding.candidate_sets(p, thresholds, decoding.LabelSetTable(SETS, COUNTS),
                                    OPTIONS["k"], OPTIONS["m"])
    out = []
    for i, image in enumerate(cands.sets):
        kept = image[cands.valid[i]]
        score = [sum(np.log(q[i, j]) if y else np.log(1 - q[i, j]) for j, y in enumerate(s))
                 + W * np.log1p(count.get(tuple(s.tolist()), 0)) for s in kept]
        out.append(kept[int(np.argmax(score))].tolist())
    return np.array(out)


def test_predict_decoded_sets_are_evaluates(env, decoding_run, capsys):  # noqa: F811
    run, files = decoding_run
    code, out, err = run_main(predict, [f"--model={run}", "--format=json", "--set_decoding",
                                        "--batch_size=5"] + files, capsys)
    assert code == 0, err
    entries = json.loads(out)
    assert [e["file"] for e in entries] == files
    tuned = env["tuned"]
    p = np.array([[e["scores"][n] for n in LABELS] for e in entries], np.float32)
    thresholded = p >= tuned
    decoded = np.array([[n in e["decoded"] for n in LABELS] for e in entries])
    for e, row in zip(entries, thresholded):  # "predicted" stays the thresholded set
        assert sorted(e["predicted"]) == sorted(n for n, t in zip(LABELS, row) if t)
    want = _by_hand(p, tuned)
    assert decoded.astype(int).tolist() == want.tolist()
    assert (decoded != thresholded).any(axis=1).sum() >= 2  # the decoding changes sets
    # mltf.evaluate --set_decoding on the same images: its set metrics are
    # those of predict's sets (the scores by the test's own image path).
    y, s = val_truth(env["data_dir"], env["model"])
    np.testing.assert_allclose(s, p, atol=1e-5)
    report = evaluate.evaluate(str(run), env["data_dir"], "val", thresholds="model",
                               train_split="", set_decoding=True)["metrics_set_decoded"]
    assert report["w"] == W and report["scorer"] == "LabelSetPrior"
    ours = decoding.evaluate_sets(y, s, decoded)
    for key in ("example_F1", "subset_accuracy", "hamming_loss", "CF1", "OF1"):
        assert report["metrics"][key] == pytest.approx(ours[key], abs=1e-12), key
    assert report["changed_sets"] == pytest.approx((decoded != thresholded).any(axis=1).mean())

    code, out, _ = run_main(predict, [f"--model={run}", "--format=csv", "--set_decoding"]
                            + files, capsys)
    rows = list(csv.reader(io.StringIO(out)))
    assert code == 0 and rows[0] == ["file"] + LABELS + [f"decoded:{n}" for n in LABELS]
    assert [[int(v) for v in r[4:]] for r in rows[1:]] == want.tolist()
    code, out, _ = run_main(predict, [f"--model={run}", "--set_decoding", files[0]], capsys)
    names = [n for n, v in zip(LABELS, want[0]) if v]
    lines = [ln.strip() for ln in out.splitlines()]
    assert code == 0 and lines[1].startswith("predicted: ")
    assert sorted(lines[2][len("decoded: "):].split(", ")) == (sorted(names) or ["(none)"])


def test_predict_set_decoding_without_the_file_fails_before_predicting(env, capsys):  # noqa: F811
    code, out, err = run_main(predict, [f"--model={env['tuned_file']}", "--set_decoding",
                                        "missing.jpg"], capsys)
    assert code == 2 and out == ""
    assert "set_decoding.npz not found" in err and "mltf.train.set_decoding = True" in err
