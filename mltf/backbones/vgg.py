"""``vgg16_fc``: the papers' VGG-16, with fc6 and fc7 and without the
1000-way layer.

VGG-16 as trained on ImageNet (and as torchvision builds it; seed 001 is
PyTorch code): five conv blocks, then Flatten, fc6 and fc7 (4096 units, ReLU,
each followed by Dropout(0.5)), then the 1000-way classifier, which both
papers drop. Neither paper mentions the dropout; keeping it is our reading.
Seed 001's Phi_cnn (eq. 2) also "changed the number of hidden units of the
second fully-connected layer to 512": ``fc7_units=512``. keras' own VGG16 top
has no dropout (``dropout=0`` gives it). The layers keep keras' names
(``block1_conv1`` ... ``block5_conv3``, ``flatten``, ``fc1``, ``fc2``), so
keras' include_top ImageNet file maps onto them by name.

fc6 sees the flattened conv5 map, so the input size is fixed, and the ImageNet
fc6 weights (a 7x7x512 = 25088-row kernel) fit only 224x224 inputs.
"""

import os

import h5py
import keras
from keras.src.applications.vgg16 import WEIGHTS_PATH
from keras.src.legacy.saving.legacy_h5_format import (
    load_attributes_from_hdf5_group, load_subset_weights_from_hdf5_group)
from keras.src.utils import file_utils  # looked up at call time: tests stub it

from mltf.backbones.registry import register_backbone

IMAGENET_FILE = "vgg16_weights_tf_dim_ordering_tf_kernels.h5"
# keras/src/applications/vgg16.py passes this for the include_top file.
_IMAGENET_FILE_HASH = "64373286793e3c8b2b4e3219cbf3544b"
# The ImageNet fc7 width: a different fc2 is a resized layer, initialised anew.
_IMAGENET_FC7_UNITS = 4096


def _vgg16_fc(input_shape, *, weights=None, pooling=None, name="vgg16_fc",
              fc7_units=_IMAGENET_FC7_UNITS, dropout=0.5) -> keras.Model:
    """VGG-16's conv blocks, Flatten, fc1 (4096) and fc2 (``fc7_units``),
    both ReLU; output ``[batch, fc7_units]``.

    Args:
        input_shape: ``(height, width, 3)`` with fixed sides (Flatten).
        weights: None or ``"imagenet"`` (keras' include_top file, see
            ``load_vgg16_fc_weights``).
        pooling: ignored (Flatten takes the whole conv5 map), as for ``mlp``.
        name: the model name.
        fc7_units: fc2's width; 4096 as ImageNet's, 512 for seed 001's
            Phi_cnn (a new, randomly initialised fc2).
        dropout: the rate of the Dropout after fc1 and after fc2 (0.5 as the
            original VGG-16 and torchvision's); 0 leaves them out (keras').
    """
    del pooling
    if any(side is None for side in input_shape[:2]):
        raise ValueError(f"backbone {name!r} flattens its conv5 map into fc6, "
                         "so it needs a fixed height and width; got "
                         f"input_shape={tuple(input_shape)}")
    if int(fc7_units) < 1:
        raise ValueError(f"fc7_units must be positive, got {fc7_units}")
    if not 0.0 <= dropout < 1.0:
        raise ValueError(f"dropout must be in [0, 1), got {dropout}")
    path = None
    if weights == "imagenet":  # first: fails fast offline
        path = file_utils.get_file(IMAGENET_FILE, WEIGHTS_PATH,
                                   cache_subdir="models",
                                   file_hash=_IMAGENET_FILE_HASH)
    conv = keras.applications.VGG16(include_top=False, weights=None,
                                    input_shape=tuple(input_shape))
    x = keras.layers.Flatten(name="flatten")(conv.output)
    for layer_name, units in (("fc1", 4096), ("fc2", int(fc7_units))):
        x = keras.layers.Dense(units, activation="relu", name=layer_name)(x)
        if dropout:
            x = keras.layers.Dropout(dropout, name=f"{layer_name}_dropout")(x)
    model = keras.Model(conv.input, x, name=name)
    if path is not None:
        load_vgg16_fc_weights(model, path)
    return model


def load_vgg16_fc_weights(model: keras.Model, path: str) -> None:
    """Loads a weights file into a ``vgg16_fc`` backbone.

    A ``.weights.h5`` (``save_weights`` of a ``vgg16_fc``) loads as keras
    does. Any other file is read as keras' legacy include_top ``.h5``
    (``vgg16_weights_tf_dim_ordering_tf_kernels.h5``), by layer name: the
    conv layers and fc1, and fc2 only at ``fc7_units == 4096`` (a resized
    fc7 keeps its random init); its ``predictions`` layer is not used.

    Args:
        model: the freshly built backbone.
        path: the weights file.
    """
    if os.fspath(path).endswith(".weights.h5"):
        model.load_weights(path)
        return
    with h5py.File(path, "r") as f:
        group = f["model_weights"] if "model_weights" in f else f
        stored = set(load_attributes_from_hdf5_group(group, "layer_names"))
        for layer in model.layers:
            if not layer.weights:
                continue
            if layer.name == "fc2" and layer.units != _IMAGENET_FC7_UNITS:
                continue
            if layer.name not in stored:
                raise ValueError(f"{path!r} has no layer {layer.name!r}: not "
                                 f"keras' VGG-16 include_top file "
                                 f"({IMAGENET_FILE})")
            values = load_subset_weights_from_hdf5_group(group[layer.name])
            shapes = [tuple(v.shape) for v in values]
            wanted = [tuple(w.shape) for w in layer.weights]
            if shapes != wanted and layer.name == "fc1":
                raise ValueError(
                    f"fc6 (fc1) in {path!r} has kernel {shapes[0]}, this "
                    f"model's is {wanted[0]}: fc6's ImageNet weights need "
                    "224x224 input (Flatten of 7x7x512 = 25088); build the "
                    "backbone at input_shape=(224, 224, 3) or use weights=None")
            if shapes != wanted:
                raise ValueError(f"layer {layer.name!r} in {path!r} has "
                                 f"weights {shapes}, this model's {wanted}")
            layer.set_weights(values)


register_backbone("vgg16_fc", _vgg16_fc, preprocessing="caffe", min_size=32,
                  imagenet_file=IMAGENET_FILE,
                  load_weights=load_vgg16_fc_weights)
