r"""Exports a trained model for serving: a ``.keras`` copy and a TF SavedModel
that takes encoded image bytes.

  python -m mltf.export --model=runs/demo --output_dir=exports/demo
  python -m mltf.export --model=runs/demo/checkpoints/best.keras \
      --output_dir=exports/demo_best --overwrite

``--output_dir`` receives:

- ``model.keras``: the model as trained (per-class thresholds included);
- ``saved_model/``: a TF SavedModel (``keras.export.ExportArchive``) with
  three signatures, all usable after ``tf.saved_model.load`` without mltf
  or Keras:

  ========================  =========================  ==========================
  signature                 input                      outputs
  ========================  =========================  ==========================
  ``serving_default``       ``images``: string [None], ``probabilities`` float32
                            encoded JPEG/PNG/BMP/GIF   [None, C]; ``predicted``
                            bytes of any size          bool [None, C]
                                                       (probabilities >= the
                                                       per-class thresholds)
  ``serve_tensors``         ``images``: float32        the same two
                            [None, H, W, 3], RGB in
                            [0, 255], already resized
  ``labels``                none                       ``label_names`` string
                                                       [C]; ``thresholds``
                                                       float32 [C]
  ========================  =========================  ==========================

  ``serving_default`` decodes (RGB; a GIF's first frame), resizes the whole
  image to H x W (bilinear) and scales it for the backbone inside the graph,
  exactly as ``mltf.evaluate`` and ``mltf.predict`` do (``mltf.inference``);
  ``serve_tensors`` does only the scaling. ``labels`` reads the label names
  from the asset ``saved_model/assets/labels.txt`` (one name per line, in
  output order) and the thresholds from a variable of the SavedModel;
- ``export_info.json``: ``model`` (the source ``.keras`` file),
  ``label_names``, ``thresholds``, ``image_size`` [H, W], ``preprocessing``,
  ``backbone``, ``signatures`` (name to input and output names), and with
  ``--set_decoding`` ``set_decoding`` (``w``, ``k``, ``m``, ``shift``,
  ``scorer``, ``knn``; with a method's scorer ``scorer_class``).

``--set_decoding`` adds a third output to ``serving_default`` and
``serve_tensors``: ``decoded`` bool [None, C], each image's label set chosen
by set-level decoding with the ``set_decoding.npz`` (and ``set_scorer.keras``)
beside the model (``mltf.train.set_decoding = True`` wrote them), computed in
the graph (``mltf.decoding_graph``): the sets ``mltf.evaluate
--set_decoding`` and ``mltf.predict --set_decoding`` pick. All the scorers
are held: the label-set prior (``mltf.set_decoding_options.scorer =
'prior'``, any method), the likelihood alone (BCE), and a method's scorer
(the WGAN-gp critic D(Y, fext(x)), RETDM's embedding distance, with its kNN
candidates), which the SavedModel holds as tracked sub-models and runs on the
same preprocessed input as the classifier. With the prior or the likelihood
the sets are numpy's bit for bit; a method's scorer is float32 and may
differ from ``mltf.predict``'s in the last bits (another batch size), which
only matters for candidates whose scores tie to within that.

Flags: ``--model`` (a ``.keras`` file or a run folder), ``--output_dir``,
``--image_size`` (N or HxW; needed only for a model that takes any size),
``--overwrite`` (replace an existing export). The export is written to a
temporary folder beside ``--output_dir`` and moved into place at the end.

Use::

    loaded = tf.saved_model.load("exports/demo/saved_model")
    data = tf.constant([open("photo.jpg", "rb").read()])
    probabilities = loaded.signatures["serving_default"](images=data)["probabilities"]
    names = loaded.signatures["labels"]()["label_names"]

Exit codes: 0 on success, 2 for a missing model, an existing output folder
without ``--overwrite``, a model that does not take images, or a
``--set_decoding`` without ``set_decoding.npz`` (or with kNN candidates and
no ``set_scorer.keras``).
"""

import os
import shutil
import sys
import tempfile

from absl import app, flags, logging

from mltf.utils import startup

FLAGS = flags.FLAGS


def define_flags(flag_values=FLAGS) -> None:
    """Defines this tool's flags in ``flag_values`` (when run as a program:
    see ``mltf.inference.define_model_flags``)."""
    from mltf import inference
    inference.define_model_flags(flag_values, image_size_help="Input size N or HxW "
                                 "(default: the model's).")
    flags.DEFINE_string("output_dir", None, "Folder for model.keras, saved_model/ and "
                        "export_info.json.", flag_values=flag_values)
    flags.DEFINE_bool("overwrite", False, "Replace an existing export in "
                      "--output_dir.", flag_values=flag_values)
    flags.DEFINE_bool("set_decoding", False, "Add the decoded label sets (set-level "
                      "decoding, from set_decoding.npz and set_scorer.keras beside the model) "
                      "as the output 'decoded'.", flag_values=flag_values)

SAVED_MODEL_DIR = "saved_model"
KERAS_FILE = "model.keras"
LABELS_ASSET = "labels.txt"
INFO_FILE = "export_info.json"
SIGNATURES = {
    "serving_default": {"inputs": ["images"], "outputs": ["probabilities", "predicted"]},
    "serve_tensors": {"inputs": ["images"], "outputs": ["probabilities", "predicted"]},
    "labels": {"inputs": [], "outputs": ["label_names", "thresholds"]},
}


class ExportError(Exception):
    """A user error that stops the export (exit code 2)."""


def set_decoder(folder: str, thresholds):
    """(the ``decoding_graph.SetDecoder`` of the run folder ``folder``'s
    ``set_decoding.npz`` (and ``set_scorer.keras``) at ``thresholds`` [C],
    its ``export_info.json`` entry); ExportError for a missing file."""
    import numpy as np
    from mltf import decoding_graph
    from mltf.training import set_decoding

    try:
        settings, scorer = set_decoding.load_saved(folder)
    except FileNotFoundError as e:
        raise ExportError(str(e)) from None
    if settings["knn"] and scorer is None:
        raise ExportError(f"--set_decoding: {folder} adds kNN candidates "
                          f"(mltf.set_decoding_options.knn) but has no "
                          f"{set_decoding.SCORER_FILE} to embed them")
    decoder = decoding_graph.SetDecoder(
        np.asarray(thresholds, np.float32), settings["table"], settings["w"], settings["k"],
        settings["m"], settings["shift"], prior=settings["scorer"] == "prior", scorer=scorer,
        knn=settings["knn"])
    info = {key: settings[key] for key in ("w", "k", "m", "shift", "scorer", "knn")}
    if scorer is not None:
        info["scorer_class"] = type(scorer).__name__
    return decoder, info


def write_saved_model(model, spec, path: str, decoder=None) -> None:
    """Writes the SavedModel of ``model`` (see the module docstring) to
    ``path``, which must not exist; ``decoder`` (``set_decoder``'s) adds
    the ``decoded`` output."""
    import keras
    import numpy as np
    import tensorflow as tf
    from mltf import inference

    if not spec.is_image:
        raise ExportError("the model takes feature vectors; only image models "
                          "are exported")
    h, w = spec.image_size
    names = list(spec.label_names)
    thresholds = np.asarray(spec.thresholds, np.float32)

    archive = keras.export.ExportArchive()
    archive.track(model)
    # The thresholds as a variable of the archive (a copy of the model's
    # weight), so the signatures work for any model class.
    threshold_var = tf.Variable(thresholds, trainable=False, name="thresholds")
    archive.track(threshold_var)
    if decoder is not None:
        archive.track(decoder)

    def outputs(inputs):
        probabilities = tf.cast(model(inputs, training=False), tf.float32)
        out = {"probabilities": probabilities, "predicted": probabilities >= threshold_var}
        if decoder is not None:
            out["decoded"] = decoder(probabilities, inputs)
        return out

    def serve_bytes(images):
        return outputs(inference.encoded_to_input(images, spec))

    def serve_tensors(images):
        return outputs(inference.preprocess_batch(images, spec))

    def labels():
        return {"label_names": label_table.lookup(tf.range(len(names), dtype=tf.int64)),
                "thresholds": tf.identity(threshold_var)}

    with tempfile.TemporaryDirectory() as tmp:
        label_file = os.path.join(tmp, LABELS_ASSET)
        with open(label_file, "w", encoding="utf-8") as f:
            f.write("".join(n + "\n" for n in names))
        # A table read from labels.txt makes the file a tracked asset: it is
        # copied into saved_model/assets/ and the labels signature reads it.
        label_table = tf.lookup.StaticHashTable(
            tf.lookup.TextFileInitializer(
                label_file, tf.int64, tf.lookup.TextFileIndex.LINE_NUMBER,
                tf.string, tf.lookup.TextFileIndex.WHOLE_LINE),
            default_value="")
        archive.track(label_table)
        archive.add_endpoint(
            "serving_default", serve_bytes,
            input_signature=[tf.TensorSpec([None], tf.string, name="images")])
        archive.add_endpoint(
            "serve_tensors", serve_tensors,
            input_signature=[tf.TensorSpec([None, h, w, 3], tf.float32, name="images")])
        archive.add_endpoint("labels", labels, input_signature=[])
        archive.write_out(path, verbose=False)


def export(model_path: str, output_dir: str, image_size=None,
           overwrite: bool = False, model=None, set_decoding: bool = False) -> dict:
    """Exports the model ``model_path`` names (or ``model``, already loaded)
    to ``output_dir`` (``set_decoding``: with the ``decoded`` output);
    returns the ``export_info.json`` dict."""
    from mltf import inference
    from mltf.utils import atomic

    if os.path.exists(output_dir) and (not os.path.isdir(output_dir)
                                       or os.listdir(output_dir)) and not overwrite:
        raise ExportError(f"{output_dir} exists and is not empty; pass "
                          "--overwrite to replace it")
    try:
        model, model_path, spec = inference.load_for_inference(model_path, image_size, model)
    except (FileNotFoundError, ValueError) as e:
        raise ExportError(str(e)) from None
    decoder, decoding_info = (set_decoder(os.path.dirname(model_path), spec.thresholds)
                              if set_decoding else (None, None))
    signatures = {name: dict(entry, outputs=entry["outputs"] + ["decoded"])
                  if set_decoding and name != "labels" else entry
                  for name, entry in SIGNATURES.items()}

    parent = os.path.dirname(os.path.abspath(output_dir))
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix="." + os.path.basename(os.path.abspath(output_dir))
                           + ".tmp-", dir=parent)
    try:
        write_saved_model(model, spec, os.path.join(tmp, SAVED_MODEL_DIR), decoder)
        model.save(os.path.join(tmp, KERAS_FILE))
        info = {"model": model_path,
                "label_names": list(spec.label_names),
                "thresholds": [float(t) for t in spec.thresholds],
                "image_size": list(spec.image_size),
                "preprocessing": spec.preprocessing,
                "backbone": spec.backbone,
                "signatures": signatures,
                **({} if decoding_info is None else {"set_decoding": decoding_info})}
        atomic.write_json(os.path.join(tmp, INFO_FILE), info)
        if os.path.exists(output_dir):
            old = tmp + "-old"
            os.replace(output_dir, old)
            os.replace(tmp, output_dir)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, output_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return info


def main(argv, flag_values=FLAGS):
    """The program: returns the exit code."""
    from mltf import inference
    fv = flag_values
    logging.set_verbosity(logging.WARNING)  # tf.saved_model's INFO lines
    error = inference.check_cli_args("mltf.export", argv, fv, ("model", "output_dir"))
    if error is not None:
        return error
    try:
        info = export(fv.model, fv.output_dir, fv.image_size, fv.overwrite,
                      set_decoding=fv.set_decoding)
    except ExportError as e:
        return inference.cli_error("mltf.export", str(e))
    out = fv.output_dir
    print(f"exported {info['model']} ({len(info['label_names'])} labels, input "
          f"{info['image_size'][0]}x{info['image_size'][1]}, preprocessing "
          f"{info['preprocessing']}) to {out}:\n"
          f"  {os.path.join(out, KERAS_FILE)}\n"
          f"  {os.path.join(out, SAVED_MODEL_DIR)}  (signatures: "
          f"{', '.join(SIGNATURES)})\n"
          f"  {os.path.join(out, INFO_FILE)}")
    return 0


if __name__ == "__main__":
    startup.quiet_tensorflow()  # first: TensorFlow prints at import
    define_flags()
    app.run(lambda argv: sys.exit(main(argv)))
