r"""Predicts the labels of image files with a trained model.

  python -m mltf.predict --model=runs/demo photo.jpg more_photos/
  python -m mltf.predict --model=runs/demo/model.keras --format=json \
      --output=predictions.json images/

``--model`` is a ``.keras`` file or a run folder (its ``model.keras``). The
other arguments are image files or folders; folders are walked recursively
(sorted) for ``.jpg .jpeg .jpe .png .bmp .gif`` (any case). Each image goes
through the model's evaluation preprocessing (``mltf.inference``: decode as
RGB, the first frame of a GIF; resize the whole image to the model's input
size, bilinear; the backbone's scaling), so a file gets the scores its record
gets from ``mltf.evaluate``. Images are predicted ``--batch_size`` at a time.

A label is predicted when its score is ``>=`` its threshold: the model's
saved per-class thresholds by default (``--thresholds=model``; 0.5 unless
``mltf.train`` tuned them), or one number for every class
(``--thresholds=0.5``).

``--set_decoding`` also writes each image's decoded set (set-level decoding,
``mltf.training.set_decoding``) from the ``set_decoding.npz`` (and
``set_scorer.keras``) beside the model, which ``mltf.train.set_decoding =
True`` wrote: the set that ``mltf.evaluate --set_decoding`` picks for the
same image at the same thresholds. The thresholded set stays where it was
(``predicted``); the decoded one is added beside it (``decoded``, below).

Formats (``--format``; written to ``--output`` or stdout):

- ``table`` (default): per image, its path, the predicted labels and the
  ``--top_k`` highest scores (``*`` marks a score at or above its
  threshold); with ``--set_decoding`` a ``decoded:`` line (the decoded
  set, by decreasing score) follows ``predicted:`` (the thresholded set);
- ``json``: a list, one object per input file in order:
  ``{"file", "predicted": [label names, by decreasing score],
  "scores": {label name: score, in label order}}``, or
  ``{"file", "error": reason}`` for a file that could not be read; with
  ``--set_decoding`` also ``"decoded"`` (the decoded set, label names by
  decreasing score) after ``"predicted"`` (the thresholded set);
- ``csv``: a header ``file,<label>,<label>,...`` (the model's labels in
  order) and one row of scores per predicted image; with ``--set_decoding``
  the header goes on with ``decoded:<label>`` for every label and each row
  with 0 or 1, the decoded set (the scores give the thresholded one).

A missing, empty, corrupt or non-image file is reported on stderr (and as an
``error`` entry in JSON) and skipped. Exit codes: 0 when at least one image
was predicted, 1 when none was, 2 for a missing model or a bad flag.
"""

import csv
import io
import json
import os
import sys

from absl import app, flags

from mltf.utils import startup

FLAGS = flags.FLAGS


def define_flags(flag_values=FLAGS) -> None:
    """Defines this tool's flags in ``flag_values`` (when run as a program:
    see ``mltf.inference.define_model_flags``)."""
    from mltf import inference
    inference.define_model_flags(flag_values, thresholds="model",
                                 batch_size_help="Images per model call.")
    flags.DEFINE_enum("format", "table", ["table", "json", "csv"], "Output format.",
                      flag_values=flag_values)
    flags.DEFINE_string("output", None, "File to write the predictions to (default: "
                        "stdout).", flag_values=flag_values)
    flags.DEFINE_integer("top_k", 5, "table: how many of the highest scores to show "
                         "per image.", flag_values=flag_values)
    flags.DEFINE_bool("set_decoding", False, "Also write each image's decoded label set "
                      "(set_decoding.npz beside the model, written by mltf.train."
                      "set_decoding = True).", flag_values=flag_values)

def predict_files(model, spec, paths, batch_size=64, report=None, keep_inputs=False):
    """Predicts every image that ``paths`` name (``mltf.inference.
    collect_image_files``).

    Returns a list of ``{"file", "scores"}`` (float32 [C] numpy; with
    ``keep_inputs`` also ``"input"``, the model's input) or ``{"file",
    "error"}`` dicts, in input order; ``report(file, reason)`` is called for
    each file skipped.
    """
    import numpy as np
    from mltf import inference

    decoder = inference.image_decoder(spec)
    results = []
    pending = []  # (index in results, decoded image)

    def flush():
        if not pending:
            return
        images = np.stack([image for _, image in pending])
        inputs = inference.preprocess_batch(images, spec).numpy()
        scores = inference.predict_arrays(model, inputs, batch_size)
        for (index, _), row, x in zip(pending, scores, inputs):
            results[index]["scores"] = row
            if keep_inputs:
                results[index]["input"] = x
        pending.clear()

    for path, error in inference.collect_image_files(paths):
        if error is None:
            try:
                image = inference.read_image(path, decoder)
            except inference.ImageReadError as e:
                error = str(e)
        if error is not None:
            results.append({"file": path, "error": error})
            if report is not None:
                report(path, error)
            continue
        results.append({"file": path})
        pending.append((len(results) - 1, image))
        if len(pending) >= batch_size:
            flush()
    flush()
    return results


def _predicted(scores, thresholds, names):
    """Names of the labels at or above their threshold, by decreasing score."""
    return _in_set(scores, scores >= thresholds, names)


def _in_set(scores, chosen, names):
    """Names of the labels where ``chosen`` is set, by decreasing score."""
    import numpy as np
    order = np.argsort(-scores, kind="stable")
    return [names[j] for j in order if chosen[j]]


def add_decoded(results, folder, thresholds, batch_size=64):
    """Adds ``"decoded"`` (uint8 [C]) to every predicted entry of
    ``results``: the sets set-level decoding chooses with the run folder
    ``folder``'s files (``predict_files(..., keep_inputs=True)``'s
    ``"input"``, which a method's scorer embeds)."""
    import numpy as np
    import tensorflow as tf
    from mltf.training import set_decoding

    done = [r for r in results if "error" not in r]
    if not done:
        return
    p = np.stack([r["scores"] for r in done])
    inputs = np.stack([r["input"] for r in done])
    dataset = tf.data.Dataset.from_tensor_slices((inputs, p)).batch(batch_size)
    sets = set_decoding.decode_saved_sets(folder, dataset, p, thresholds)
    for r, row in zip(done, sets):
        r["decoded"] = row


def format_json(results, names, thresholds) -> str:
    out = []
    for r in results:
        if "error" in r:
            out.append({"file": r["file"], "error": r["error"]})
            continue
        s = r["scores"]
        entry = {"file": r["file"], "predicted": _predicted(s, thresholds, names)}
        if "decoded" in r:
            entry["decoded"] = _in_set(s, r["decoded"], names)
        entry["scores"] = {n: float(v) for n, v in zip(names, s)}
        out.append(entry)
    return json.dumps(out, indent=2) + "\n"


def format_csv(results, names, decoded=False) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["file"] + list(names) + ([f"decoded:{n}" for n in names]
                                              if decoded else []))
    for r in results:
        if "error" not in r:
            writer.writerow([r["file"]] + [repr(float(v)) for v in r["scores"]]
                            + ([int(v) for v in r["decoded"]] if decoded else []))
    return buffer.getvalue()


def format_table(results, names, thresholds, top_k=5) -> str:
    import numpy as np
    k = max(1, min(int(top_k), len(names)))
    width = max(len(n) for n in names)
    lines = []
    for r in results:
        if "error" in r:
            lines.append(f"{r['file']}\n  skipped: {r['error']}")
            continue
        s = r["scores"]
        predicted = _predicted(s, thresholds, names)
        lines.append(r["file"])
        lines.append("  predicted: " + (", ".join(predicted) if predicted else "(none)"))
        if "decoded" in r:
            decoded = _in_set(s, r["decoded"], names)
            lines.append("  decoded: " + (", ".join(decoded) if decoded else "(none)"))
        lines.append(f"  top {k}:")
        for j in np.argsort(-s, kind="stable")[:k]:
            mark = "*" if s[j] >= thresholds[j] else " "
            lines.append(f"    {names[j]:<{width}}  {float(s[j]):.4f} {mark}")
    return "\n".join(lines) + "\n"


def main(argv, flag_values=FLAGS):
    """The program: returns the exit code."""
    from mltf import inference
    fv = flag_values
    inputs = argv[1:]
    if not fv.model:
        return inference.cli_error("mltf.predict", "--model is required")
    if not inputs:
        return inference.cli_error("mltf.predict", "name at least one image file or folder")
    if fv.batch_size <= 0 or fv.top_k <= 0:
        return inference.cli_error("mltf.predict",
                                   "--batch_size and --top_k must be positive")
    try:
        model, model_path, spec = inference.load_for_inference(fv.model, fv.image_size)
        thresholds, _ = inference.resolve_thresholds(fv.thresholds, spec)
        if fv.set_decoding:  # before the images: a run without the file fails at once
            from mltf.training import set_decoding
            set_decoding.read_settings(os.path.dirname(model_path))
    except (FileNotFoundError, ValueError) as e:
        return inference.cli_error("mltf.predict", str(e))
    if not spec.is_image:
        return inference.cli_error("mltf.predict",
                                   "the model takes feature vectors, not images")

    def report(path, reason):
        print(f"mltf.predict: skipped {path}: {reason}", file=sys.stderr)

    results = predict_files(model, spec, inputs, fv.batch_size, report, fv.set_decoding)
    if fv.set_decoding:
        add_decoded(results, os.path.dirname(model_path), thresholds, fv.batch_size)
    names = spec.label_names
    if fv.format == "json":
        text = format_json(results, names, thresholds)
    elif fv.format == "csv":
        text = format_csv(results, names, fv.set_decoding)
    else:
        text = format_table(results, names, thresholds, fv.top_k)
    if fv.output:
        folder = os.path.dirname(os.path.abspath(fv.output))
        os.makedirs(folder, exist_ok=True)
        with open(fv.output, "w") as f:
            f.write(text)
    else:
        sys.stdout.write(text)
    done = sum("error" not in r for r in results)
    skipped = len(results) - done
    print(f"mltf.predict: {done} image(s) predicted, {skipped} skipped"
          + (f"; written to {fv.output}" if fv.output else ""), file=sys.stderr)
    return 0 if done else 1


if __name__ == "__main__":
    startup.quiet_tensorflow()  # first: TensorFlow prints at import
    define_flags()
    app.run(lambda argv: sys.exit(main(argv)))
