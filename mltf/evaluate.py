r"""Evaluates a trained model on one split of an mltf dataset.

  python -m mltf.evaluate --model=runs/demo --data_dir=data/demo
  python -m mltf.evaluate --model=runs/demo/checkpoints/best.keras \
      --data_dir=data/demo --split=val --thresholds=model

``--model`` is a ``.keras`` file or a run folder (its ``model.keras``). The
input size comes from the model's input shape (``--image_size`` overrides
it, and is needed for a model that takes any size), the input scaling from
the model (``mltf.inference.inference_spec``); images go through
the evaluation pipeline (``pipelines.make_dataset`` with ``training=False``:
decode, resize the whole image, scale; one pass in file order). Every metric
of ``mltf.metrics.compute_all`` is computed over the whole split, printed as
``mltf.metrics.format_table`` and written as JSON.

Flags: ``--model``, ``--data_dir``, ``--split`` (default ``val``),
``--output`` (default ``<run folder, or the .keras file's folder>/
eval_<split>.json``), ``--thresholds`` (``0.5``, any number in [0, 1], or
``model``: the per-class thresholds saved in the model, tuned by
``mltf.train``), ``--image_size`` (N or HxW), ``--batch_size`` (64),
``--train_split`` (default ``train``: the split of the same dataset whose
label sets the dependency diagnostics compare against; ``""`` skips them),
``--tensorboard_dir`` (also write the figures there, ``mltf.training.pictures``),
``--set_decoding`` (decode whole label sets as the run folder's
``set_decoding.npz`` and ``set_scorer.keras`` say, written by
``mltf.train.set_decoding``; see ``mltf.training.set_decoding``).

Beside the JSON file (``<stem>.json``), at the same thresholds
(``mltf.metrics.figures``): ``<stem>_pr_curves.png`` (precision-recall per
class; above 16 classes the 8 best and 8 worst by AP), ``<stem>_ap.png``
(AP per class, best first, the mAP dashed) and, for an image dataset,
``<stem>_images.png`` (the split's first 16 images, correct labels green,
missed orange, wrong red).

The JSON file (keys in this order; label order is the model's):

=====================  =======================================================
key                    value
=====================  =======================================================
``model``              the ``.keras`` file evaluated
``data_dir``           the dataset folder
``split``              the split evaluated
``thresholds_used``    ``"model"`` (the model's saved per-class thresholds) or
                       the constant threshold as a string (``"0.5"``); the
                       values per class are in ``per_class``
``image_size``         [height, width] the images were resized to
``preprocessing``      the input scaling mode (``pipelines.preprocessing``)
``metrics``            the ``mltf.metrics.compute_all`` dict at those
                       thresholds: every key of ``mltf.metrics.RESULT_KEYS``
                       (counts ``num_examples``, ``num_labels``,
                       ``num_labels_with_positives``,
                       ``num_examples_with_labels``; ``CP CR CF1 OP OR OF1``
                       and their ``_top3`` variants; the set metrics
                       ``example_P example_R example_F1 subset_accuracy
                       jaccard labels_per_image_pred
                       labels_per_image_true``; ``mAP``,
                       ``hamming_loss``, ``ranking_loss``, ``one_error``,
                       ``coverage``, ``avg_precision``), meanings and
                       conventions in the ``mltf.metrics`` docstring
``per_class``          {label name: {``AP``, ``precision``, ``recall``,
                       ``f1``, ``threshold``}} per label
                       (``mltf.metrics.per_class_metrics`` at the thresholds
                       used): ``AP`` is the class's average precision (NaN
                       when the split has no positive of the class),
                       ``precision``/``recall``/``f1`` at ``threshold``,
                       plus ``num_positives`` and ``num_predicted`` (ints)
``diagnostics``        (absent with ``--train_split=""``)
                       ``mltf.metrics.dependency_diagnostics`` at the same
                       thresholds against ``train_split``'s label sets,
                       ``train_split`` first: ``cooccurrence_gap``,
                       ``novel_set_rate_pred``, ``novel_set_rate_true``,
                       ``cardinality_tvd``, ``num_pairs``, ``min_support``,
                       the histograms ``cardinality_pred`` /
                       ``cardinality_true`` and, up to 100 labels, the
                       matrices ``cooccurrence_pred`` / ``cooccurrence_true``
                       (rows ``i``, NaN where no set holds ``i``). The
                       whole training split: a run's selection part, held
                       out of its training, counts as seen here
``demo``               (a dataset of ``make_tfrecords --source=demo`` only)
                       ``mltf.metrics.demo.demo_diagnostics`` at the same
                       thresholds, the scenes drawn again from the recorded
                       options: ``recall_normal``, ``recall_faint``,
                       ``recall_occluded``, ``cross_theme_rate_pred``,
                       ``cross_theme_rate_true`` and their counts
=====================  =======================================================

With ``--set_decoding``, ``metrics_set_decoded`` follows ``diagnostics``:
``metrics`` (every ``compute_all`` metric of the decoded sets, whose
candidates start from the thresholded set at the thresholds used: pass
``--thresholds=model`` for the run's own), the run's ``w``, ``scorer``,
``k``, ``m``, ``candidates_per_image`` and ``changed_sets`` (the share of
images whose decoded set is not the thresholded one).

Fractions are in [0, 1] (not percent). Undefined values (``mAP``,
``one_error``, ``coverage``, a class's ``AP``) are written as ``NaN``, as
``json.dump`` does and ``mltf.train``'s ``metrics.json`` does too (Python's
``json.load`` reads them back).

Exit codes: 0 on success; 2 when the model, the dataset or the split is
missing, when the model's label count differs from the dataset's, or on a
bad flag value.
"""

import os
import sys

from absl import app, flags

from mltf.utils import startup

FLAGS = flags.FLAGS


def define_flags(flag_values=FLAGS) -> None:
    """Defines this tool's flags in ``flag_values`` (when run as a program:
    see ``mltf.inference.define_model_flags``)."""
    from mltf import inference
    inference.define_model_flags(flag_values, thresholds="0.5",
                                 batch_size_help="Evaluation batch size.")
    flags.DEFINE_string("data_dir", None, "An mltf dataset folder "
                        "(tools/make_tfrecords.py).", flag_values=flag_values)
    flags.DEFINE_string("split", "val", "The split to evaluate.", flag_values=flag_values)
    flags.DEFINE_string("output", None, "JSON file to write (default: <run folder or "
                        "the .keras file's folder>/eval_<split>.json).",
                        flag_values=flag_values)
    flags.DEFINE_string("train_split", "train", "The split whose label sets the dependency "
                        "diagnostics (novel label sets) compare against; '' skips them.",
                        flag_values=flag_values)
    flags.DEFINE_string("tensorboard_dir", None, "Also write the figures (PR curves, AP per "
                        "class, the image grid) and per-class PR curves to TensorBoard "
                        "event files here.", flag_values=flag_values)
    flags.DEFINE_bool("set_decoding", False, "Also decode whole label sets with the run "
                      "folder's set_decoding.npz and set_scorer.keras (mltf.train."
                      "set_decoding = True wrote them).", flag_values=flag_values)


class EvaluationError(Exception):
    """A user error that stops the evaluation (exit code 2)."""


def evaluate(model_path: str, data_dir: str, split: str = "val",
             thresholds="0.5", image_size=None, batch_size: int = 64,
             model=None, train_split: str = "train", set_decoding: bool = False) -> dict:
    """Evaluates and returns the report dict written as JSON (see the module
    docstring). ``model`` may be passed already loaded (then ``model_path``
    is only recorded). Raises ``EvaluationError`` for user errors."""
    return _evaluate(model_path, data_dir, split, thresholds, image_size, batch_size,
                     model, train_split, set_decoding)[0]


def _evaluate(model_path, data_dir, split, thresholds, image_size, batch_size, model,
              train_split, set_decoding=False):
    """``evaluate``: ``(report, dataset info, (ids, labels, scores), the
    thresholds [C])``."""
    import pipelines
    from mltf import inference, metrics
    from mltf.data import schema

    if batch_size <= 0:
        raise EvaluationError(f"--batch_size must be positive, got {batch_size}")
    # The cheap checks first: the dataset and split, then the model.
    try:
        info = schema.read_info(data_dir)
    except (FileNotFoundError, ValueError) as e:
        raise EvaluationError(str(e)) from None
    if split not in info.splits:
        raise EvaluationError(f"split {split!r} not found in {data_dir}: the "
                              f"dataset has {', '.join(sorted(info.splits))}")
    try:
        model, model_path, spec = inference.load_for_inference(model_path, image_size, model)
    except (FileNotFoundError, ValueError) as e:
        raise EvaluationError(str(e)) from None
    if spec.num_labels != info.num_labels:
        raise EvaluationError(
            f"label count mismatch: the model {model_path} predicts "
            f"{spec.num_labels} labels ({_names(spec.label_names)}) but the "
            f"dataset {data_dir} has {info.num_labels} "
            f"({_names(info.label_names)})")
    if spec.label_names != list(info.label_names) and getattr(
            model, "label_names", None):
        print(f"mltf.evaluate: warning: the model's label names "
              f"({_names(spec.label_names)}) differ from the dataset's "
              f"({_names(info.label_names)}); labels are matched by index",
              file=sys.stderr)
    if (info.kind == schema.KIND_IMAGE) != spec.is_image:
        raise EvaluationError(
            f"the model takes {'images' if spec.is_image else 'feature vectors'} "
            f"but {data_dir} is a {info.kind} dataset")
    if not spec.is_image and spec.feature_dim != info.feature_dim:
        raise EvaluationError(
            f"the model takes feature vectors of length {spec.feature_dim} but "
            f"{data_dir} has feature_dim {info.feature_dim}")
    try:
        t, described = inference.resolve_thresholds(thresholds, spec)
    except ValueError as e:
        raise EvaluationError(str(e)) from None
    train_labels = _train_labels(data_dir, info, train_split)

    config = pipelines.InputConfig(
        data_dir, split, batch_size=batch_size, training=False,
        image_size=spec.image_size or 224, preprocessing=spec.preprocessing, with_ids=True)
    try:
        dataset = pipelines.make_dataset(config, info=info)
        ids, y, s = inference.predict_dataset(model, dataset, with_ids=True)
    except (FileNotFoundError, ValueError) as e:  # a missing shard, no example
        raise EvaluationError(f"split {split!r} of {data_dir}: {e}") from None
    results = metrics.compute_all(y, s, threshold=t)
    per = metrics.per_class_metrics(y, s, threshold=t)
    per_class = {}
    for j, name in enumerate(spec.label_names):
        per_class[name] = {"AP": float(per["ap"][j]),
                           "precision": float(per["precision"][j]),
                           "recall": float(per["recall"][j]),
                           "f1": float(per["f1"][j]),
                           "threshold": float(t[j]),
                           "num_positives": int(per["num_positives"][j]),
                           "num_predicted": int(per["num_predicted"][j])}
    demo = _demo_diagnostics(info, split, ids, y, s, t)
    decoded = _set_decoded(model_path, dataset, y, s, t) if set_decoding else None
    report = {"model": model_path, "data_dir": data_dir, "split": split,
            "thresholds_used": described,
            "image_size": list(spec.image_size) if spec.image_size else None,
            "preprocessing": spec.preprocessing,
            "metrics": results, "per_class": per_class,
            **({} if train_labels is None else {"diagnostics": {
                "train_split": train_split, **metrics.diagnostics_json(
                    metrics.dependency_diagnostics(y, s, train_labels, threshold=t))}}),
            **({} if decoded is None else {"metrics_set_decoded": decoded}),
            **({} if demo is None else {"demo": demo})}
    return report, info, (ids, y, s), t


def _set_decoded(model_path, dataset, y, s, t):
    """``metrics_set_decoded`` from the files beside ``model_path``."""
    from mltf.training import set_decoding
    try:
        return set_decoding.decode_saved(os.path.dirname(model_path), dataset, y, s, t)
    except FileNotFoundError as e:
        raise EvaluationError(str(e)) from None


def _demo_diagnostics(info, split, ids, y, s, t):
    """``mltf.metrics.demo.SceneTruth.diagnostics`` of a dataset that
    ``make_tfrecords --source=demo`` wrote; None for any other dataset, or
    with a warning when the scenes drawn again are not these."""
    from mltf.metrics import demo
    truth = demo.scene_truth(info, split)
    if truth is None:
        if info.source == "demo":
            print(f"mltf.evaluate: warning: the demo's recorded options draw no split "
                  f"{split!r}; no demo diagnostics", file=sys.stderr)
        return None
    return demo.diagnostics_or_none(truth, ids, y, s, t, program="mltf.evaluate")


def _train_labels(data_dir, info, split):
    """The label sets of ``split`` (None for ``""``)."""
    from mltf.data import schema
    if not split:
        return None
    if split not in info.splits:
        raise EvaluationError(f"--train_split {split!r} not found in {data_dir} (the dataset "
                              f"has {', '.join(sorted(info.splits))}): name the split the "
                              "model was trained on, or --train_split='' to skip the "
                              "dependency diagnostics")
    try:
        return schema.read_labels(data_dir, split)
    except FileNotFoundError as e:
        raise EvaluationError(str(e)) from None


def _names(names, limit=8):
    shown = ", ".join(names[:limit])
    return shown + (f", ... ({len(names)} in all)" if len(names) > limit else "")


def main(argv, flag_values=FLAGS):
    """The program: returns the exit code."""
    from mltf import inference, metrics
    from mltf.training import pictures
    from mltf.utils import atomic
    fv = flag_values
    error = inference.check_cli_args("mltf.evaluate", argv, fv, ("model", "data_dir"))
    if error is not None:
        return error
    try:
        report, info, predictions, t = _evaluate(
            fv.model, fv.data_dir, fv.split, fv.thresholds, fv.image_size, fv.batch_size,
            None, fv.train_split, fv.set_decoding)
    except EvaluationError as e:
        return inference.cli_error("mltf.evaluate", str(e))
    output = fv.output or os.path.join(
        inference.default_output_folder(fv.model), f"eval_{fv.split}.json")
    atomic.write_json(output, report)
    drawn = pictures.draw(info, fv.data_dir, fv.split, predictions, t, "mltf.evaluate")
    pngs = pictures.write_pngs(os.path.splitext(output)[0], drawn)
    if fv.tensorboard_dir:
        pictures.write_tensorboard(fv.tensorboard_dir, drawn, predictions[1], predictions[2],
                                   info.label_names)
    print(metrics.format_table(report["metrics"], report.get("diagnostics")))
    decoded = report.get("metrics_set_decoded")
    if decoded is not None:
        print(f"Set-level decoding (w = {decoded['w']:g}, {decoded['scorer'] or 'likelihood only'}"
              f"; {100 * decoded['changed_sets']:.1f}% of the sets changed): "
              + ", ".join(f"{name} {100 * decoded['metrics'][key]:.2f}" for key, name in (
                  ("example_F1", "example-F1"), ("subset_accuracy", "subset accuracy"),
                  ("CF1", "C-F1"), ("OF1", "O-F1"), ("mAP", "mAP"))))
    demo = report.get("demo")
    if demo is not None:
        print("Demo digits (%): recall of normal / faint / occluded digits "
              + " / ".join(f"{100 * demo[f'recall_{k}']:.2f}"
                           for k in ("normal", "faint", "occluded"))
              + f"; predicted pairs across themes {100 * demo['cross_theme_rate_pred']:.2f} "
              f"(true {100 * demo['cross_theme_rate_true']:.2f})")
    print(f"(model {report['model']}; split {fv.split!r} of {fv.data_dir}; "
          f"thresholds {report['thresholds_used']}; written to {output})")
    print(f"Figures: {', '.join(pngs)}"
          + (f"; TensorBoard events in {fv.tensorboard_dir}" if fv.tensorboard_dir else ""))
    return 0


if __name__ == "__main__":
    startup.quiet_tensorflow()  # first: TensorFlow prints at import
    define_flags()
    app.run(lambda argv: sys.exit(main(argv)))
