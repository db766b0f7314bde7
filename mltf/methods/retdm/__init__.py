"""Seed 001, RETDM: image and label embeddings with a two-way kNN metric
loss, label reconstruction and the classifier head, in three stages.

Files by role: ``knn`` (the label-set table), ``losses`` (J1, J2),
``memory_bank`` (J2's image neighbours), ``model`` (eq. 13 and the stages),
``method`` (the trainer's hooks and the stage schedule).
"""

from mltf.data.label_sets import distinct_label_sets
from mltf.methods.retdm.knn import knn_table, label_set_table
from mltf.methods.retdm.losses import metric_loss, metric_loss_in_batch
from mltf.methods.retdm.memory_bank import MemoryBank
from mltf.methods.retdm.method import RETDM, StageSchedule
from mltf.methods.retdm.model import RETDMClassifier, build_retdm

METHOD = RETDM()

__all__ = ["METHOD", "MemoryBank", "RETDM", "RETDMClassifier", "StageSchedule",
           "build_retdm", "distinct_label_sets", "knn_table", "label_set_table",
           "metric_loss", "metric_loss_in_batch"]
