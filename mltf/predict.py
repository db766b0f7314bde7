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

Formats (``--format``; written to ``--output`` or stdout):

- ``table`` (default): per image, its path, the predicted labels and the
  ``--top_k`` highest scores (``*`` marks a score at or above its
  threshold);
- ``json``: a list, one object per input file in order:
  ``{"file", "predicted": [label names, by decreasing score],
  "scores": {label name: score, in label order}}``, or
  ``{"file", "error": reason}`` for a file that could not be read;
- ``csv``: a header ``file,<label>,<label>,...`` (the model's labels in
  order) and one row of scores per predicted image.

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

def predict_files(model, spec, paths, batch_size=64, report=None):
    """Predicts every image that ``paths`` name (``mltf.inference.
    collect_image_files``).

    Returns a list of ``{"file", "scores"}`` (float32 [C] numpy) or
    ``{"file", "error"}`` dicts, in input order; ``report(file, reason)`` is
    called for each file skipped.
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
        for (index, _), row in zip(pending, scores):
            results[index]["scores"] = row
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
    import numpy as np
    order = np.argsort(-scores, kind="stable")
    return [names[j] for j in order if scores[j] >= thresholds[j]]


def format_json(results, names, thresholds) -> str:
    out = []
    for r in results:
        if "error" in r:
            out.append({"file": r["file"], "error": r["error"]})
            continue
        s = r["scores"]
        out.append({"file": r["file"],
                    "predicted": _predicted(s, thresholds, names),
                    "scores": {n: float(v) for n, v in zip(names, s)}})
    return json.dumps(out, indent=2) + "\n"


def format_csv(results, names) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["file"] + list(names))
    for r in results:
        if "error" not in r:
            writer.writerow([r["file"]] + [repr(float(v)) for v in r["scores"]])
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
        model, _, spec = inference.load_for_inference(fv.model, fv.image_size)
        thresholds, _ = inference.resolve_thresholds(fv.thresholds, spec)
    except (FileNotFoundError, ValueError) as e:
        return inference.cli_error("mltf.predict", str(e))
    if not spec.is_image:
        return inference.cli_error("mltf.predict",
                                   "the model takes feature vectors, not images")

    def report(path, reason):
        print(f"mltf.predict: skipped {path}: {reason}", file=sys.stderr)

    results = predict_files(model, spec, inputs, fv.batch_size, report)
    names = spec.label_names
    if fv.format == "json":
        text = format_json(results, names, thresholds)
    elif fv.format == "csv":
        text = format_csv(results, names)
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
