"""What ``mltf.evaluate``, ``mltf.predict`` and ``mltf.export`` share: find and
load a trained model, and turn encoded images into exactly the input it was
trained with.

A model is named by a ``.keras`` file or by a run folder (``mltf.train``'s
``--model_dir``), which means its ``model.keras`` (the final model, with the
tuned per-class thresholds). ``checkpoints/best.keras`` and
``checkpoints/last.keras`` are named by their file.

The inference input of a model (``InferenceSpec``) is read from the model
itself: the image size from its input shape (the backbone's input layer), the
input scaling from the classifier's ``preprocessing`` attribute (saved in its
config), or, for ``.keras`` files written before it had one, from the
backbone's name (``mltf.backbones.preprocessing_mode``); label names and
thresholds from the ``mltf.models.MultiLabelClassifier``. Images then go through the evaluation
path of the input pipeline (``pipelines.input``, ``training=False``):
``pipelines.augment.decode`` (JPEG, PNG, BMP, first frame of a GIF, as RGB),
``pipelines.augment.eval_resize`` (bilinear, whole image, no crop) and
``pipelines.preprocessing.preprocess`` -- the same functions, so a file
predicted here gets the scores its record gets in evaluation.
"""

import dataclasses
import os
import sys
from typing import List, Optional, Sequence, Tuple, Union

import numpy as np
import tensorflow as tf

from mltf.utils import imageio
from pipelines import augment, preprocessing
from pipelines.input import model_input

# File name endings ``collect_image_files`` picks up in folders.
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".jpe", ".png", ".bmp", ".gif")

MODEL_FILE = "model.keras"


class ModelNotFoundError(FileNotFoundError):
    """The model path names no .keras file nor a run folder holding one."""


@dataclasses.dataclass
class InferenceSpec:
    """How to feed a model.

    Args:
      image_size: (height, width) of the model input; None for a model on
        feature vectors.
      preprocessing: the ``pipelines.preprocessing`` mode.
      backbone: the backbone's name ('' when the model has none).
      label_names: the C label names, in output order.
      thresholds: float32 [C], the model's per-class decision thresholds
        (0.5 unless tuned).
      feature_dim: the input length of a model on feature vectors.
    """
    image_size: Optional[Tuple[int, int]]
    preprocessing: str
    backbone: str
    label_names: List[str]
    thresholds: np.ndarray
    feature_dim: Optional[int] = None

    @property
    def num_labels(self) -> int:
        return len(self.label_names)

    @property
    def is_image(self) -> bool:
        return self.image_size is not None


# --------------------------------------------------------------------------
# Finding and loading a model
# --------------------------------------------------------------------------

def resolve_model_path(path: str) -> str:
    """The ``.keras`` file that ``path`` names: the file itself, or
    ``<path>/model.keras`` for a run folder. ``ModelNotFoundError`` (a
    ``FileNotFoundError``) with what was looked for otherwise."""
    if not path:
        raise ModelNotFoundError("no model given (--model=<.keras file or run folder>)")
    if os.path.isdir(path):
        candidate = os.path.join(path, MODEL_FILE)
        if os.path.isfile(candidate):
            return candidate
        hint = ""
        ckpt = os.path.join(path, "checkpoints")
        if os.path.isdir(ckpt):
            found = sorted(f for f in os.listdir(ckpt) if f.endswith(".keras"))
            if found:
                hint = ("; the run may not have finished: name a checkpoint "
                        "instead, e.g. " + os.path.join(ckpt, found[0]))
        raise ModelNotFoundError(f"{candidate} not found: {path!r} is not a "
                                 f"finished run folder{hint}")
    if not os.path.exists(path):
        raise ModelNotFoundError(f"model not found: {path} (give a .keras file "
                                 "or a run folder holding model.keras)")
    if not path.endswith(".keras"):
        raise ModelNotFoundError(f"{path} is not a .keras file (give a .keras "
                                 "file or a run folder holding model.keras)")
    return path


def default_output_folder(model_arg: str) -> str:
    """The folder a tool writes beside a model: the run folder when
    ``model_arg`` is one, else the folder of the ``.keras`` file."""
    if os.path.isdir(model_arg):
        return model_arg
    return os.path.dirname(os.path.abspath(model_arg))


def load_model(path: str):
    """Loads the model that ``path`` names (``resolve_model_path``), without
    its optimizer state. Returns ``(model, model_file)``."""
    model_file = resolve_model_path(path)
    import keras
    from mltf import models  # noqa: F401  (registers MultiLabelClassifier)
    try:
        model = keras.saving.load_model(model_file, compile=False)
    except (ValueError, OSError, TypeError) as e:
        raise ValueError(f"cannot load {model_file}: {e}") from e
    return model, model_file


def _input_shape(model):
    backbone = getattr(model, "backbone", None)
    for candidate in (backbone, model):
        if candidate is None:
            continue
        try:
            shape = candidate.input_shape
        except (AttributeError, ValueError):
            continue
        if isinstance(shape, list) and len(shape) == 1:
            shape = shape[0]
        if isinstance(shape, tuple):
            return tuple(shape)
    raise ValueError("cannot tell the model's input shape (it has no input "
                     "layer); pass the image size explicitly")


def model_label_names(model) -> List[str]:
    """The model's label names, or ``label_0``... when it has none."""
    names = getattr(model, "label_names", None)
    if names:
        return [str(n) for n in names]
    num = getattr(model, "num_labels", None)
    if num is None:
        num = int(model.outputs[0].shape[-1])
    return [f"label_{i}" for i in range(int(num))]


def model_thresholds(model) -> np.ndarray:
    """The model's per-class thresholds, float32 [C] (0.5 when it has none)."""
    variable = getattr(model, "thresholds", None)
    if variable is not None:
        return np.asarray(variable.numpy() if hasattr(variable, "numpy") else variable,
                          np.float32).reshape(-1)
    return np.full(len(model_label_names(model)), 0.5, np.float32)


def parse_image_size(value) -> Optional[Tuple[int, int]]:
    """``None``/``""`` -> None; ``N`` or ``"N"`` -> (N, N); ``"HxW"`` -> (H, W)."""
    if value in (None, ""):
        return None
    from pipelines.augment import as_hw
    try:
        return as_hw(value)
    except ValueError:
        raise ValueError(f"image size must be N or HxW, got {value!r}") from None


def inference_spec(model, image_size=None,
                   preprocessing_mode: Optional[str] = None) -> InferenceSpec:
    """The ``InferenceSpec`` of ``model``.

    Args:
      model: a loaded model (normally a ``MultiLabelClassifier``).
      image_size: overrides the input size (N, "N", "HxW" or (H, W)); needed
        when the model takes any size.
      preprocessing_mode: overrides the scaling; by default the model's own
        ``preprocessing`` attribute, or for a model without one (files
        written before the classifier saved it) the mode of the backbone
        named like ``model.backbone``.
    """
    from mltf import backbones
    shape = _input_shape(model)
    backbone = getattr(model, "backbone", None)
    backbone_name = backbone.name if backbone is not None else ""
    names = model_label_names(model)
    thresholds = model_thresholds(model)
    if len(shape) == 2:  # feature vectors [None, D]
        mode = preprocessing_mode or "none"
        return InferenceSpec(None, preprocessing.mode_for(mode), backbone_name, names,
                             thresholds, feature_dim=shape[1])
    if len(shape) != 4:
        raise ValueError(f"the model's input shape {shape} is neither images "
                         "[None, H, W, 3] nor feature vectors [None, D]")
    size = parse_image_size(image_size)
    if size is None:
        if shape[1] is None or shape[2] is None:
            raise ValueError(f"the model takes images of any size (input shape "
                             f"{shape}); give the size to resize to "
                             "(--image_size=N or HxW)")
        size = (int(shape[1]), int(shape[2]))
    if preprocessing_mode is None:
        # The model's word beats its backbone's name: a backbone registered or
        # renamed after training would otherwise get another backbone's scaling.
        preprocessing_mode = getattr(model, "preprocessing", None)
    if preprocessing_mode is None:
        try:
            preprocessing_mode = backbones.preprocessing_mode(backbone_name)
        except ValueError:
            raise ValueError(
                f"the model's backbone {backbone_name!r} is not a registered "
                "mltf backbone, so its input scaling is unknown") from None
    return InferenceSpec(size, preprocessing.mode_for(preprocessing_mode), backbone_name,
                         names, thresholds)


def load_for_inference(path: str, image_size=None, model=None):
    """``(model, model_file, spec)``: the model ``path`` names (``load_model``)
    or ``model`` when it is given already loaded (``path`` is then only
    recorded), and its ``inference_spec``. ``FileNotFoundError`` or
    ``ValueError`` saying what is wrong."""
    if model is None:
        model, path = load_model(path)
    return model, path, inference_spec(model, image_size)


# --------------------------------------------------------------------------
# Images to model inputs (the evaluation path of the input pipeline)
# --------------------------------------------------------------------------

def decode_and_resize(encoded, spec: InferenceSpec):
    """Encoded image bytes (scalar string) -> float32 [H, W, 3] in [0, 255]:
    ``augment.decode`` + ``augment.eval_resize``, as the eval pipeline."""
    return augment.eval_resize(augment.decode(encoded), spec.image_size)


def preprocess_batch(images, spec: InferenceSpec):
    """float32 [B, H, W, 3] in [0, 255] -> the model's scaled input."""
    return preprocessing.preprocess(images, spec.preprocessing)


def encoded_to_input(encoded, spec: InferenceSpec):
    """A batch of encoded images (string [B]) -> the model input [B, H, W, 3]
    (decode, resize, scale; works eagerly and inside a ``tf.function``)."""
    h, w = spec.image_size
    images = tf.map_fn(lambda e: decode_and_resize(e, spec), encoded,
                       fn_output_signature=tf.TensorSpec([h, w, 3], tf.float32))
    return preprocess_batch(images, spec)


def image_decoder(spec: InferenceSpec):
    """A function: one file's bytes -> float32 [H, W, 3] in [0, 255]. Runs
    eagerly, so bytes that do not decode raise
    ``tf.errors.InvalidArgumentError`` with the decoder's own message."""
    def decode(encoded):
        return decode_and_resize(tf.convert_to_tensor(encoded, tf.string), spec)

    return decode


# Shared with the TFRecord writer.
ImageReadError = imageio.ImageReadError
_tf_error_text = imageio.tf_error_text


def read_image(path: str, decoder) -> np.ndarray:
    """``decoder`` (``image_decoder``) on the bytes of file ``path``;
    ``ImageReadError`` saying why when it is missing, empty or undecodable."""
    return imageio.decode(imageio.read_file(path), decoder).numpy()


def collect_image_files(paths: Sequence[str]) -> List[Tuple[str, Optional[str]]]:
    """The files that ``paths`` name, in order: a file as given (whatever its
    extension), a folder walked recursively (sorted) for ``IMAGE_EXTENSIONS``
    (case-insensitive). Returns ``(path, error)`` pairs, ``error`` set for a
    path that does not exist."""
    out = []
    for path in paths:
        if os.path.isdir(path):
            for root, dirs, files in os.walk(path):
                dirs.sort()
                for name in sorted(files):
                    if name.lower().endswith(IMAGE_EXTENSIONS):
                        out.append((os.path.join(root, name), None))
        elif os.path.exists(path):
            out.append((path, None))
        else:
            out.append((path, "no such file or folder"))
    return out


def predict_arrays(model, inputs: np.ndarray, batch_size: int = 64) -> np.ndarray:
    """Model probabilities for preprocessed inputs, float32 [N, C], in
    batches of ``batch_size``."""
    out = []
    for start in range(0, len(inputs), batch_size):
        out.append(np.asarray(model.predict_on_batch(inputs[start:start + batch_size])))
    if not out:
        return np.zeros((0, len(model_label_names(model))), np.float32)
    return np.concatenate(out).astype(np.float32)


# --------------------------------------------------------------------------
# Thresholds
# --------------------------------------------------------------------------

def resolve_thresholds(choice: Union[str, float], spec: InferenceSpec):
    """``(thresholds [C] float32, description)`` for ``choice``: ``"model"``
    (the model's saved per-class thresholds) or a number in [0, 1] used for
    every class."""
    text = str(choice).strip().lower()
    if text == "model":
        return spec.thresholds.astype(np.float32), "model"
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"thresholds must be 'model' or a number in [0, 1], "
                         f"got {choice!r}") from None
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"a threshold must be in [0, 1], got {value}")
    return np.full(spec.num_labels, value, np.float32), repr(value)


# --------------------------------------------------------------------------
# What the three CLIs share
# --------------------------------------------------------------------------

def define_model_flags(flag_values, *, thresholds=None, batch_size_help=None,
                       image_size_help="Resize images to N or HxW (default: the "
                                       "model's input size).") -> None:
    """The flags the inference CLIs share: ``--model``, ``--image_size`` and,
    when given a default, ``--thresholds`` and ``--batch_size`` (64).

    Each CLI's ``define_flags`` calls this when it runs as a program, not at
    import, so ``mltf.evaluate``, ``mltf.predict`` and ``mltf.export`` can be
    imported together (each would define ``--model`` again)."""
    from absl import flags
    flags.DEFINE_string("model", None, "A .keras file or a run folder (uses its "
                        "model.keras).", flag_values=flag_values)
    flags.DEFINE_string("image_size", None, image_size_help, flag_values=flag_values)
    if thresholds is not None:
        flags.DEFINE_string("thresholds", thresholds, "'model' (the model's saved "
                            "per-class thresholds) or one threshold in [0, 1] for "
                            "every class.", flag_values=flag_values)
    if batch_size_help is not None:
        flags.DEFINE_integer("batch_size", 64, batch_size_help, flag_values=flag_values)


def cli_error(tool: str, message: str) -> int:
    """Prints ``<tool>: error: <message>`` on stderr; returns the exit code 2."""
    print(f"{tool}: error: {message}", file=sys.stderr)
    return 2


def check_cli_args(tool: str, argv, flag_values, required) -> Optional[int]:
    """For a CLI that takes no positional argument: ``cli_error``'s 2 when
    ``argv`` holds one or a flag named in ``required`` is unset, else None."""
    if len(argv) > 1:
        return cli_error(tool, f"unexpected arguments {argv[1:]}")
    if not all(flag_values[name].value for name in required):
        return cli_error(tool, " and ".join(f"--{name}" for name in required)
                         + " are required")
    return None


def predict_dataset(model, dataset, return_ids: bool = False):
    """Labels and scores over one pass of an (x, y) dataset, in order, and
    with ``return_ids`` the records' ids too (``x["ids"]``, a pipeline with
    ``with_ids=True``).

    ``x`` may be a dict (the pipeline's ``images``/``features`` plus extras);
    only the model input is fed.
    """
    # A plain call in the cross-replica context: predict_on_batch would run
    # the whole batch on every replica of a MirroredStrategy and concatenate.
    infer = getattr(model, "_mltf_infer", None)
    if infer is None:
        infer = tf.function(lambda x: model(x, training=False), reduce_retracing=True)
        model._mltf_infer = infer
    scores, labels, ids = [], [], []
    for x, y in dataset:
        scores.append(np.asarray(infer(model_input(x))))
        labels.append(np.asarray(y))
        if return_ids:
            ids += [i.decode("utf-8") for i in x["ids"].numpy()]
    if not scores:
        raise ValueError("the evaluation dataset is empty")
    out = np.concatenate(labels), np.concatenate(scores)
    return (*out, ids) if return_ids else out
