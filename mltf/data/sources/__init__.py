"""Sources: small modules that turn raw dataset files into ``Item``s.

Each module ``mltf.data.sources.<name>`` defines
``load(options: SourceOptions) -> SourceData``. Modules are imported only when
selected, so e.g. pycocotools is not imported for a CSV conversion.
"""

import importlib

from mltf.data.sources.base import (ALL, Item, SourceData, SourceError,
                                    SourceOptions)

SOURCES = ("coco", "nuswide", "mirflickr", "voc", "csv", "arff", "tfds", "demo")


def load(name: str, options: SourceOptions) -> SourceData:
    """Runs source ``name`` on ``options``."""
    if name not in SOURCES:
        raise SourceError(f"unknown source {name!r}; choose one of "
                          f"{', '.join(SOURCES)}")
    module = importlib.import_module(f"mltf.data.sources.{name}_source")
    return module.load(options)


__all__ = ["ALL", "Item", "SourceData", "SourceError", "SourceOptions",
           "SOURCES", "load"]
