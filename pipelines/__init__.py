"""tf.data input pipelines for mltf datasets (see ``pipelines.input``)."""

from pipelines.augment import CROP_SIZES, eval_resize, random_five_crop
from pipelines.input import (InputConfig, distributed_dataset, make_dataset,
                             steps_per_epoch)
from pipelines.mismatch import MismatchSampler
from pipelines.preprocessing import preprocess

__all__ = ["CROP_SIZES", "InputConfig", "MismatchSampler", "distributed_dataset",
           "eval_resize", "make_dataset", "preprocess", "random_five_crop",
           "steps_per_epoch"]
