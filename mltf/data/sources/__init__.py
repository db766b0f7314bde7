"""Sources: small modules that turn raw dataset files into ``Item``s.

A source is one module that defines ``Options`` (a frozen dataclass extending
``base.SharedOptions``, its fields declared with ``base.option``) and
``load(options: Options) -> SourceData``. ``SOURCES`` names the built-in ones
(module ``mltf.data.sources.<name>_source``); ``register_source`` adds one at
run time. make_tfrecords builds its flags from the declarations.

Modules are imported only when asked for. Building the tool's flags imports
every source module, so a module imports its heavy third-party package
(pycocotools, tensorflow_datasets, scikit-learn) inside ``load``: a CSV
conversion never imports pycocotools.
"""

import dataclasses
import importlib
from typing import Dict, List, Optional, Union

from mltf.data.sources.base import (ALL, Item, OptionSpec, SharedOptions,
                                    SourceData, SourceError, SourceOptions,
                                    declared_options, option)

# The built-in sources, in the order ``--source`` lists them.
SOURCES = ("coco", "nuswide", "mirflickr", "voc", "csv", "arff", "tfds", "demo")

# name -> module path, or an object with ``Options`` and ``load``.
_registry: Dict[str, object] = {name: f"mltf.data.sources.{name}_source"
                                for name in SOURCES}


def register_source(name: str, module) -> None:
    """Adds source ``name``: a module path, or any object (a module, a
    namespace) with ``Options`` and ``load``. make_tfrecords flags defined
    after this call include its options."""
    if name in _registry:
        raise ValueError(f"source {name!r} is already registered")
    _registry[name] = module


def unregister_source(name: str) -> None:
    """Removes a source added with ``register_source``."""
    if name in SOURCES:
        raise ValueError(f"{name!r} is a built-in source")
    del _registry[name]


def names() -> List[str]:
    """Every source name, built-in ones first."""
    return list(_registry)


def source_module(name: str):
    """The module (or object) of source ``name``, imported on first use."""
    if name not in _registry:
        raise SourceError(f"unknown source {name!r}; choose one of "
                          f"{', '.join(_registry)}")
    module = _registry[name]
    if isinstance(module, str):
        module = importlib.import_module(module)
    return module


def option_specs() -> List[OptionSpec]:
    """Every declared option: the shared ones, then each source's own in
    registry order. Raises ValueError when two declare the same name."""
    specs = declared_options(SharedOptions)
    owner = {s.name: "base.SharedOptions" for s in specs}
    for name in _registry:
        options_cls = source_module(name).Options
        if not (isinstance(options_cls, type) and issubclass(options_cls, SharedOptions)):
            raise TypeError(f"source {name!r}: Options must be a dataclass "
                            "extending mltf.data.sources.base.SharedOptions")
        for spec in declared_options(options_cls, f"{name}: ", SharedOptions):
            if spec.name in owner:
                raise ValueError(f"source {name!r} declares option "
                                 f"{spec.name!r}, already declared by "
                                 f"{owner[spec.name]}")
            owner[spec.name] = name
            specs.append(spec)
    return specs


def load(name: str, options: Optional[Union[SourceOptions, SharedOptions]] = None
         ) -> SourceData:
    """Runs source ``name`` on ``options``: its own ``Options``, a
    ``SourceOptions``, or None for the defaults."""
    module = source_module(name)
    if options is None:
        options = module.Options()
    elif isinstance(options, SourceOptions):
        known = {s.name for s in option_specs()}
        known.update(f.name for f in dataclasses.fields(SharedOptions))
        unknown = sorted(set(vars(options)) - known)
        if unknown:
            raise TypeError(f"no source has an option {unknown[0]!r}")
        options = options.for_source(module.Options)
    elif not isinstance(options, module.Options):
        raise TypeError(f"source {name!r} takes {module.Options.__qualname__}, "
                        f"not {type(options).__name__}")
    return module.load(options)


__all__ = ["ALL", "Item", "OptionSpec", "SharedOptions", "SourceData",
           "SourceError", "SourceOptions", "SOURCES", "load", "names", "option",
           "option_specs", "register_source", "source_module",
           "unregister_source"]
