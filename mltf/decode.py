r"""Set-level decoding of a finished run, chosen again on its selection split.

  python -m mltf.decode --run_dir=runs/demo_wgangp \
      --gin_bindings="mltf.set_decoding_options.scorer = 'method'"
  python -m mltf.decode --run_dir=runs/scene_retdm --save \
      --gin_bindings="mltf.set_decoding_options.knn = 10" \
      --gin_bindings="mltf.set_decoding_options.metric = 'subset_accuracy'"

Any run folder ``mltf.train`` finished can be decoded, whether or not it was
trained with ``mltf.train.set_decoding``: the options are
``mltf.set_decoding_options``' gin bindings (the defaults when none is
given: the method's own scorer, the WGAN-gp critic, RETDM's embedding, or the
likelihood alone for BCE), ``w`` is chosen on the run's selection split
(``select_ids.txt``) and the reported split of ``metrics.json`` is decoded
at it, as the end of a run does (``mltf.training.redecode``). The method's
scorer comes from the fit model of the run's final epoch
(``checkpoints/best.keras`` or ``last.keras``, ``--checkpoint`` overrides);
``--data_dir`` names the dataset folder when it moved since the run;
``--thresholds=global`` (any ``mltf.metrics.choose_thresholds`` mode)
chooses the thresholds again on the selection split, where the run's own
are poor, and decodes around the sets they give.

Writes ``--output`` (default ``<run_dir>/decode.json``): ``run_dir``,
``method``, ``checkpoint``, ``options``, ``split``, ``thresholds``,
``metrics`` (threshold 0.5), ``metrics_tuned`` (at ``thresholds``) and ``metrics_set_decoded``
(as in ``metrics.json``: ``w``, ``scorer``, the selection figures per
``w``); beside it ``<stem>.npz`` with the reported split's ``ids``,
``labels``, ``scores`` and ``decoded`` sets, for paired comparisons.
``--save`` also writes ``set_decoding.npz`` (and ``set_scorer.keras``) into
the run folder, replacing those of the run: ``mltf.evaluate``,
``mltf.predict`` and ``mltf.export --set_decoding`` then decode this way.

Exit codes: 0 on success; 2 for a folder that is not a finished run, a
missing file, or options the run's method cannot decode with.
"""

import os
import sys

from absl import app, flags

from mltf.utils import startup

FLAGS = flags.FLAGS


def define_flags(flag_values=FLAGS) -> None:
    """Defines this tool's flags in ``flag_values``."""
    flags.DEFINE_string("run_dir", None, "A run folder mltf.train finished.",
                        flag_values=flag_values)
    flags.DEFINE_multi_string("gin_bindings", [], "mltf.set_decoding_options bindings, e.g. "
                              "\"mltf.set_decoding_options.scorer = 'prior'\".",
                              flag_values=flag_values)
    flags.DEFINE_string("output", None, "The JSON report (default <run_dir>/decode.json).",
                        flag_values=flag_values)
    flags.DEFINE_string("checkpoint", None, "The fit model under checkpoints/ the method's "
                        "scorer comes from: best or last (default: the run's final choice).",
                        flag_values=flag_values)
    flags.DEFINE_bool("save", False, "Also write set_decoding.npz (and set_scorer.keras) into "
                      "the run folder for mltf.evaluate/predict/export --set_decoding.",
                      flag_values=flag_values)
    flags.DEFINE_string("data_dir", None, "The dataset folder, when it moved since the run "
                        "(default: the one metrics.json names).", flag_values=flag_values)
    flags.DEFINE_string("thresholds", "model", "model (the run's saved thresholds) or a "
                        "mltf.metrics.choose_thresholds mode (global, f1, ...) chosen again on "
                        "the selection split; the candidates start from the set they give.",
                        flag_values=flag_values)
    flags.DEFINE_integer("batch_size", 256, "Inference batch size.", flag_values=flag_values)


def decode(run_dir: str, options: dict, checkpoint=None, batch_size: int = 256,
           save: bool = False, data_dir=None, thresholds: str = "model"):
    """(the report written as JSON, the reported split's ``(ids, labels,
    scores, decoded)``) of ``run_dir`` decoded under ``options``
    (``mltf.training.set_decoding.set_decoding_options()``'s dict).
    ``ValueError`` / ``FileNotFoundError`` for user errors."""
    from mltf import metrics
    from mltf.training import redecode

    if checkpoint not in (None, "best", "last"):
        raise ValueError(f"--checkpoint must be best or last, got {checkpoint!r}")
    if save and thresholds != "model":
        raise ValueError("--save decodes at the model's own thresholds: drop --thresholds="
                         f"{thresholds} (mltf.predict and mltf.export use those)")
    run = redecode.FinishedRun(run_dir, batch_size, checkpoint, data_dir,
                               None if thresholds == "model" else thresholds)
    entry, sets = run.decode(options)
    if not run.carved:
        print(f"mltf.decode: warning: {run_dir} carved no selection split (select_fraction = "
              "0): w is chosen on the reported split, so its figures are optimistic",
              file=sys.stderr)
    if save:
        run.save(options, entry["w"])
    _, y, p = run.evaluate
    report = {"run_dir": run_dir, "method": run.method, "checkpoint": run.checkpoint,
              "options": options, "split": run.report["split"],
              "thresholds": [float(t) for t in run.thresholds],
              "metrics": metrics.compute_all(y, p),
              "metrics_tuned": metrics.compute_all(y, p, threshold=run.thresholds),
              "metrics_set_decoded": entry}
    return report, (run.ids, y, p, sets)


def main(argv, flag_values=FLAGS):
    """The program: returns the exit code."""
    import gin

    from mltf import inference, metrics
    from mltf.training import run_files, set_decoding
    from mltf.utils import atomic
    fv = flag_values
    error = inference.check_cli_args("mltf.decode", argv, fv, ("run_dir",))
    if error is not None:
        return error
    try:
        gin.parse_config(fv.gin_bindings)
        report, (ids, y, p, sets) = decode(fv.run_dir, set_decoding.set_decoding_options(),
                                           fv.checkpoint, fv.batch_size, fv.save,
                                           fv.data_dir, fv.thresholds)
    except (ValueError, FileNotFoundError, SyntaxError) as e:  # SyntaxError: a bad binding
        return inference.cli_error("mltf.decode", str(e))
    output = fv.output or os.path.join(fv.run_dir, "decode.json")
    atomic.write_json(output, report)
    arrays = os.path.splitext(output)[0] + ".npz"
    run_files.write_predictions(arrays, ids, y, p, sets)
    entry = report["metrics_set_decoded"]
    print(set_decoding.summary_line(entry))
    print(metrics.format_set_comparison(
        [("threshold 0.5", report["metrics"]), ("tuned", report["metrics_tuned"]),
         (f"decoded (w={entry['w']:g})", entry["metrics"])], report["metrics"]["mAP"]))
    print(f"(split {report['split']!r}; {output}, {arrays}"
          + ("; set_decoding.npz saved in the run folder" if fv.save else "") + ")")
    return 0


if __name__ == "__main__":
    startup.quiet_tensorflow()  # first: TensorFlow prints at import
    define_flags()
    app.run(lambda argv: sys.exit(main(argv)))
