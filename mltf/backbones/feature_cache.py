"""Feature cache: a frozen backbone run once over an image dataset, its pooled
features written as a feature dataset.

Heads, seed 000's critic (whose fext is frozen anyway) and RETDM can then
train on the cached vectors with the ``mlp`` backbone in seconds on a CPU,
instead of running the CNN every step::

    python tools/cache_features.py --data_dir=data/miml_scene_full \
        --output_dir=data/miml_scene_lite0 --backbone=efficientnet_lite0 \
        --image_size=224

Each image is seen once, in the evaluation view (resized to ``image_size``,
no crop, no flip): training on cached features has no image augmentation,
which is the price of the speed. The output is an ordinary mltf dataset
(``kind: "features"``, same splits, ids and labels) written by
``mltf.data.writer.write_dataset``, so it is atomic and its
``dataset_info.json`` records the backbone, weights and image size under
``arguments``.
"""

import os
from typing import Dict, Iterator, Optional, Sequence, Union

import numpy as np
import tensorflow as tf

from mltf.backbones.registry import build_backbone, preprocessing_mode
from mltf.data import schema, writer
from mltf.data.sources.base import Item, SourceData
from mltf.utils.sizes import as_hw
from pipelines.input import InputConfig, make_dataset


class _SplitFeatures:
    """The items of one split, computed batch by batch as the writer reads
    them (``__len__`` feeds its progress bar; nothing is held in memory)."""

    def __init__(self, data_dir: str, split: str, num_examples: int, model,
                 image_size, batch_size: int, preprocessing: str):
        self.data_dir, self.split = data_dir, split
        self.num_examples = num_examples
        self.model, self.image_size = model, image_size
        self.batch_size, self.preprocessing = batch_size, preprocessing

    def __len__(self) -> int:
        return self.num_examples

    def __iter__(self) -> Iterator[Item]:
        config = InputConfig(data_dir=self.data_dir, split=self.split,
                             batch_size=self.batch_size, training=False,
                             image_size=self.image_size,
                             preprocessing=self.preprocessing, with_ids=True)
        forward = tf.function(lambda x: self.model(x, training=False))
        for x, labels in make_dataset(config):
            features = forward(x["images"]).numpy()
            ids = x["ids"].numpy()
            for key, row, vector in zip(ids, labels.numpy(), features):
                yield Item(key=key.decode("utf-8"),
                           labels=np.flatnonzero(row > 0.5).tolist(),
                           features=vector.astype("float32"))


def cache_features(data_dir: str, output_dir: str, *,
                   backbone: str = "efficientnet_lite0",
                   weights: Optional[str] = "imagenet",
                   image_size: Union[int, Sequence[int]] = 224,
                   splits: Optional[Sequence[str]] = None,
                   pooling: str = "avg", batch_size: int = 32,
                   overwrite: bool = False, progress: bool = True,
                   backbone_kwargs: Optional[Dict] = None
                   ) -> schema.DatasetInfo:
    """Writes the frozen backbone's pooled features of ``data_dir``'s images.

    Args:
        data_dir: an image dataset written by ``tools/make_tfrecords.py``.
        output_dir: the feature dataset's folder.
        backbone: a registered image backbone.
        weights: its weights: ``"imagenet"``, a weights file, or None
            (random, for tests).
        image_size: the side (or ``(H, W)``) images are resized to.
        splits: the splits to cache (default: all of ``data_dir``'s).
        pooling: ``"avg"`` or ``"max"``.
        batch_size: images per forward pass.
        overwrite: replace a dataset already in ``output_dir``.
        progress: show a progress bar per split.
        backbone_kwargs: further ``build_backbone`` options.

    Returns:
        The written dataset's ``DatasetInfo``.
    """
    info = schema.read_info(data_dir)
    if info.kind != schema.KIND_IMAGE:
        raise ValueError(f"{data_dir!r} holds {info.kind}, not images: the "
                         "feature cache runs a backbone over images")
    if pooling not in ("avg", "max"):
        raise ValueError(f"pooling must be 'avg' or 'max', got {pooling!r}")
    splits = list(splits or info.splits)
    for split in splits:
        info.split(split)  # a clear error for an unknown split
    if os.path.abspath(output_dir) == os.path.abspath(data_dir):
        raise ValueError("output_dir must differ from data_dir")
    side = as_hw(image_size)
    model = build_backbone(backbone, (*side, 3), weights=weights,
                           trainable=False, pooling=pooling,
                           **(backbone_kwargs or {}))
    feature_dim = int(model.output.shape[-1])
    mode = preprocessing_mode(backbone)
    source = SourceData(
        label_names=list(info.label_names),
        splits={split: _SplitFeatures(data_dir, split,
                                      info.split(split).num_examples, model,
                                      side, batch_size, mode)
                for split in splits},
        kind=schema.KIND_FEATURES, feature_dim=feature_dim)
    arguments = {"data_dir": data_dir, "backbone": backbone,
                 "weights": weights, "image_size": list(side),
                 "pooling": pooling, "source_dataset": info.source,
                 "source_arguments": info.arguments}
    return writer.write_dataset(source, output_dir, source_name="features",
                                arguments=arguments, overwrite=overwrite,
                                progress=progress)
