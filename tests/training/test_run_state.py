"""mltf.training.run_state: commits, resume, fallbacks and their messages, on a tiny
Keras model driven through the callback's hooks as fit drives them."""

import csv
import json
import os

import keras
import numpy as np
import pytest
import tensorflow as tf

from mltf.training import run_state


def tiny_model(seed=0):
    keras.utils.set_random_seed(seed)
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    model.compile(optimizer=keras.optimizers.Adam(0.1), loss="mse")
    model.optimizer.build(model.trainable_variables)
    return model


def train_a_step(model, seed):
    rng = np.random.default_rng(seed)
    model.train_on_batch(rng.normal(size=(4, 3)), rng.normal(size=(4, 2)))


def make_state(tmp_path, **kwargs):
    kwargs.setdefault("tensorboard_dir", str(tmp_path / "tb"))
    kwargs.setdefault("checkpoint_dir", str(tmp_path / "ckpt"))
    return run_state.RunState(str(tmp_path / "backup"), str(tmp_path / "log.csv"),
                              checkpoint_metric="val_mAP", mode="max", **kwargs)


def run_epochs(state, model, first, values):
    """What fit does: restore, on_train_begin, then a step and on_epoch_end
    per epoch (``values``: each epoch's val_mAP)."""
    state.set_model(model)
    state.on_train_begin()
    for epoch, value in enumerate(values, start=first):
        train_a_step(model, epoch)
        state.on_epoch_end(epoch, {"loss": 1.0 / (epoch + 1), "val_mAP": value})


def event_scalars(folder):
    """{tag: [steps]} over every event file under ``folder``."""
    out = {}
    for root, _, files in os.walk(folder):
        for name in files:
            if "tfevents" not in name:
                continue
            for event in tf.compat.v1.train.summary_iterator(os.path.join(root, name)):
                for value in event.summary.value:
                    tag = f"{os.path.relpath(root, folder)}/{value.tag}"
                    out.setdefault(tag, []).append(event.step)
    return {k: sorted(v) for k, v in out.items()}


def weights_of(model):
    return [keras.ops.convert_to_numpy(v) for v in run_state.state_variables(model)]


def test_atomic_write_keeps_the_old_file_when_a_write_fails(tmp_path):
    path = tmp_path / "a.json"
    run_state.write_json(str(path), {"v": 1})

    def broken(tmp):
        with open(tmp, "w") as f:
            f.write('{"v": 2, "trunc')
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        run_state.atomic_write(str(path), broken)
    assert json.loads(path.read_text()) == {"v": 1}
    assert os.listdir(tmp_path) == ["a.json"]  # no temporary left


def test_resume_restores_weights_optimizer_rows_best_and_logs(tmp_path):
    model = tiny_model()
    state = make_state(tmp_path)
    assert state.restore(model) == 0
    run_epochs(state, model, 0, [0.5, 0.9, 0.7])
    expected = weights_of(model)

    resumed = tiny_model(seed=1)  # different init: the restore must overwrite it
    # What a kill inside a write leaves beside the log (and in the backup).
    (tmp_path / ".tmp-123-log.csv").write_text("epoch,lo")
    (tmp_path / "backup" / ".tmp-123-weights-000004.weights.h5").write_bytes(b"\x89HDF")
    state2 = make_state(tmp_path)
    assert state2.restore(resumed) == 3
    for a, b in zip(expected, weights_of(resumed)):
        np.testing.assert_array_equal(a, b)
    assert int(resumed.optimizer.iterations.numpy()) == 3
    assert not (tmp_path / ".tmp-123-log.csv").exists()
    assert state2.best == {"metric": "val_mAP", "value": 0.9, "epoch": 1}
    rows = list(csv.DictReader(open(tmp_path / "log.csv")))
    assert [r["epoch"] for r in rows] == ["0", "1", "2"]
    assert [float(r["val_mAP"]) for r in rows] == [0.5, 0.9, 0.7]
    # Two states kept (keep=2), each with its weights.
    names = sorted(os.listdir(tmp_path / "backup"))
    assert names == ["state-000002.json", "state-000003.json",
                     "weights-000002.weights.h5", "weights-000003.weights.h5"]
    # best.keras is epoch 1's model (0.9), last.keras epoch 2's.
    assert sorted(os.listdir(tmp_path / "ckpt")) == ["best.keras", "last.keras"]
    last = keras.models.load_model(tmp_path / "ckpt" / "last.keras")
    np.testing.assert_array_equal(last.layers[0].kernel.numpy(), model.layers[0].kernel.numpy())
    assert event_scalars(tmp_path / "tb") == {"train/epoch_loss": [0, 1, 2],
                                             "validation/epoch_mAP": [0, 1, 2]}


def test_a_kill_between_commit_and_publication_is_completed_on_resume(tmp_path, monkeypatch):
    model = tiny_model()
    state = make_state(tmp_path)
    state.restore(model)
    run_epochs(state, model, 0, [0.5])
    best_before = (tmp_path / "ckpt" / "best.keras").read_bytes()

    def killed(*args, **kwargs):
        raise KeyboardInterrupt  # the process dies right after the commit

    monkeypatch.setattr(run_state.RunState, "_publish", killed)
    with pytest.raises(KeyboardInterrupt):
        run_epochs(state, model, 1, [0.8])
    monkeypatch.undo()
    pending = sorted(os.listdir(tmp_path / "ckpt"))
    assert ".pending-best-000002.keras" in pending
    assert (tmp_path / "ckpt" / "best.keras").read_bytes() == best_before
    assert len(list(csv.DictReader(open(tmp_path / "log.csv")))) == 1  # not yet rewritten

    resumed = tiny_model(seed=2)
    state2 = make_state(tmp_path)
    assert state2.restore(resumed) == 2
    assert sorted(os.listdir(tmp_path / "ckpt")) == ["best.keras", "last.keras"]
    assert (tmp_path / "ckpt" / "best.keras").read_bytes() != best_before
    assert [r["epoch"] for r in csv.DictReader(open(tmp_path / "log.csv"))] == ["0", "1"]
    assert event_scalars(tmp_path / "tb")["validation/epoch_mAP"] == [0, 1]


def test_an_uncommitted_epoch_leaves_no_row_event_or_checkpoint(tmp_path, monkeypatch):
    model = tiny_model()
    state = make_state(tmp_path)
    state.restore(model)
    run_epochs(state, model, 0, [0.5])
    # Epoch 1's logs were written by hand (as an older writer could have), and
    # its weights, but the kill came before the commit.
    run_state.write_epoch_events(str(tmp_path / "tb"), {"epoch": 1, "loss": 0.1})
    with open(tmp_path / "log.csv", "a") as f:
        f.write("1,0.1,0.99\n")
    original = run_state.write_json

    def no_commit(path, data):
        if os.path.basename(path).startswith("state-"):
            raise KeyboardInterrupt
        return original(path, data)

    monkeypatch.setattr(run_state, "write_json", no_commit)
    with pytest.raises(KeyboardInterrupt):
        run_epochs(state, model, 1, [0.99])
    monkeypatch.undo()
    assert "weights-000002.weights.h5" in os.listdir(tmp_path / "backup")

    state2 = make_state(tmp_path)
    assert state2.restore(tiny_model(seed=3)) == 1
    assert "weights-000002.weights.h5" not in os.listdir(tmp_path / "backup")
    assert sorted(os.listdir(tmp_path / "ckpt")) == ["best.keras", "last.keras"]
    assert [r["epoch"] for r in csv.DictReader(open(tmp_path / "log.csv"))] == ["0"]
    assert event_scalars(tmp_path / "tb") == {"train/epoch_loss": [0],
                                             "validation/epoch_mAP": [0]}
    assert state2.best["value"] == 0.5  # the uncommitted 0.99 never counted


def test_damaged_newest_state_falls_back_and_says_so(tmp_path, capsys):
    model = tiny_model()
    state = make_state(tmp_path)
    state.restore(model)
    run_epochs(state, model, 0, [0.5, 0.6])
    weights = tmp_path / "backup" / "weights-000002.weights.h5"
    weights.write_bytes(weights.read_bytes()[:1000])  # cut off (another tool, a disk)
    (tmp_path / "backup" / "notes.txt").write_text("mine")
    capsys.readouterr()
    state2 = make_state(tmp_path)
    assert state2.restore(tiny_model(seed=4)) == 1
    line = capsys.readouterr().out.strip()
    assert "after epoch 1" in line and "weights-000001.weights.h5" in line
    assert "state-000002.json" in line and "1,000 bytes" in line
    assert "ignored: notes.txt" in line
    assert len(line.splitlines()) == 1
    assert os.path.exists(tmp_path / "backup" / "state-000002.json.invalid")
    assert (tmp_path / "backup" / "notes.txt").read_text() == "mine"  # nothing lost


def test_no_usable_state_is_a_clear_error_that_changes_nothing(tmp_path):
    backup = tmp_path / "backup"
    backup.mkdir()
    (backup / "state-000001.json").write_text("{not json")
    (backup / "state-000002.json").write_text(json.dumps({"format": 99}))
    before = sorted(os.listdir(backup))
    with pytest.raises(run_state.RunStateError) as e:
        make_state(tmp_path).restore(tiny_model())
    message = str(e.value)
    assert "state-000001.json: unreadable" in message
    assert "state-000002.json" in message and "not an mltf run state" in message
    assert "Nothing was changed" in message
    assert sorted(os.listdir(backup)) == before


def test_a_foreign_weights_file_with_the_right_size_fails_its_hash(tmp_path):
    model = tiny_model()
    state = make_state(tmp_path, keep=1)
    state.restore(model)
    run_epochs(state, model, 0, [0.5])
    weights = tmp_path / "backup" / "weights-000001.weights.h5"
    data = bytearray(weights.read_bytes())
    data[-10] ^= 0xFF
    weights.write_bytes(bytes(data))
    with pytest.raises(run_state.RunStateError, match="SHA-256"):
        make_state(tmp_path).restore(tiny_model())


def test_callback_counters_survive_a_resume(tmp_path):
    model = tiny_model()
    plateau = keras.callbacks.ReduceLROnPlateau(monitor="val_mAP", mode="max", patience=5)
    plateau.set_model(model)
    plateau.on_train_begin()
    state = make_state(tmp_path, callbacks=[plateau])
    state.restore(model)
    state.set_model(model)
    state.on_train_begin()
    for epoch, value in enumerate([0.5, 0.4, 0.3]):
        logs = {"val_mAP": value}
        plateau.on_epoch_end(epoch, logs)
        state.on_epoch_end(epoch, logs)
    assert (plateau.wait, plateau.best) == (2, 0.5)

    fresh = keras.callbacks.ReduceLROnPlateau(monitor="val_mAP", mode="max", patience=5)
    fresh.set_model(model)
    state2 = make_state(tmp_path, callbacks=[fresh])
    state2.restore(tiny_model())
    fresh.on_train_begin()  # resets, as in fit
    state2.on_train_begin()  # then the saved counters come back
    assert (fresh.wait, fresh.best, fresh.cooldown_counter) == (2, 0.5, 0)
    assert isinstance(fresh.wait, int)


def test_a_keras_backup_of_an_earlier_version_resumes(tmp_path, capsys):
    model = tiny_model()
    train_a_step(model, 0)
    backup = tmp_path / "backup"
    backup.mkdir()
    model.save_weights(str(backup / run_state.LEGACY_WEIGHTS))
    (backup / run_state.LEGACY_META).write_text(json.dumps({"epoch": 1, "batch": -1}))
    (tmp_path / "log.csv").write_text("epoch,loss,val_mAP\n0,0.5,0.7\n1,0.4,0.6\n")
    state = make_state(tmp_path)
    resumed = tiny_model(seed=5)
    assert state.restore(resumed) == 1
    assert "latest.weights.h5" in capsys.readouterr().out
    np.testing.assert_array_equal(resumed.layers[0].kernel.numpy(), model.layers[0].kernel.numpy())
    assert state.best == {"metric": "val_mAP", "value": 0.7, "epoch": 0}
    # The row of the epoch the old backup did not hold is dropped.
    assert [r["epoch"] for r in csv.DictReader(open(tmp_path / "log.csv"))] == ["0"]
    run_epochs(state, resumed, 1, [0.65])
    assert not (backup / run_state.LEGACY_WEIGHTS).exists()  # replaced by the new format
    assert state.best["value"] == 0.7


def test_csv_text_unions_columns_in_csvlogger_order():
    text = run_state.csv_text([{"epoch": 0, "loss": 1.0}, {"epoch": 1, "loss": 0.5, "b": 2.0}])
    assert text.splitlines() == ["epoch,b,loss", "0,,1.0", "1,2.0,0.5"]


def _state_round_trip(tmp_path, model, fresh, fit):
    """Trains ``model`` a little, commits an epoch, restores into ``fresh``
    and returns both models' state variables by path."""
    fit(model)
    state = make_state(tmp_path)
    state.restore(model)
    state.set_model(model)
    state.on_epoch_end(0, {"val_mAP": 0.5})
    assert make_state(tmp_path).restore(fresh) == 1
    # In creation order (auto-numbered names differ between the two models).
    before = {f"{i}:{v.path}": keras.ops.convert_to_numpy(v)
              for i, v in enumerate(run_state.state_variables(model))}
    after = [keras.ops.convert_to_numpy(v) for v in run_state.state_variables(fresh)]
    assert len(before) == len(after)
    return before, dict(zip(before, after))


def test_wgan_state_round_trip_keeps_both_optimizers_critic_and_noise_key(tmp_path):
    from test_wgan import make_wgan, toy_batch
    def fit(model):
        for seed in range(2):
            x, y, mis = toy_batch(model.slots * 4, seed=seed)
            model.train_on_batch({"images": x, "mismatched_labels": mis}, y)

    model = make_wgan(seed=0)
    before, after = _state_round_trip(tmp_path, model, make_wgan(seed=9), fit)
    assert before.keys() == after.keys()
    for key in before:
        np.testing.assert_array_equal(before[key], after[key], err_msg=key)
    assert int(model.generator_optimizer.iterations.numpy()) > 0
    assert int(model.critic_optimizer.iterations.numpy()) == (
        model.n_critic * int(model.generator_optimizer.iterations.numpy()))
    assert any("critic" in k for k in before) and any("seed" in k for k in before)


def test_retdm_state_round_trip_keeps_the_memory_bank_and_its_age(tmp_path):
    from test_retdm import _data, _tiny
    x, y = _data(32)

    def fit(model):
        model.set_stage(3)
        model.fit(x, y, batch_size=8, epochs=2, verbose=0)

    model = _tiny(y)
    before, after = _state_round_trip(tmp_path, model, _tiny(y, seed=7), fit)
    for key in before:
        np.testing.assert_array_equal(before[key], after[key], err_msg=key)
    bank = [k for k in before if k.endswith("last_seen")]
    assert bank and before[bank[0]].max() > 0  # the bank was written and came back
