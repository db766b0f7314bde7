"""Training methods as plug-ins, looked up by name (``mltf.train.method``).

``REGISTRY`` maps a name to the module that defines ``METHOD``, an instance
of ``mltf.methods.base.Method``; modules are imported when first asked for
(``get``) or all at once (``load_all``, which the CLI calls so that gin knows
every method's configurables before it parses a config). Adding a method is a
package with ``METHOD`` plus one line here, or ``register`` at run time.
"""

import importlib
from typing import Dict, Union

from mltf.methods.base import LabelDependencyModel, Method, Run, SettingsError

REGISTRY: Dict[str, Union[str, Method]] = {
    "bce": "mltf.methods.bce",
    "wgan_gp": "mltf.methods.wgan_gp",
    "retdm": "mltf.methods.retdm",
}


def register(name: str, method: Union[str, Method]) -> None:
    """Adds a method: a ``Method`` instance or the module path of one that
    defines ``METHOD``."""
    REGISTRY[name] = method


def get(name: str) -> Method:
    """The method registered as ``name``; ``SettingsError`` naming the
    choices otherwise."""
    if name not in REGISTRY:
        raise SettingsError(f"mltf.train.method must be one of "
                            f"{', '.join(repr(n) for n in REGISTRY)}, got {name!r}")
    entry = REGISTRY[name]
    if isinstance(entry, str):
        entry = importlib.import_module(entry).METHOD
    return entry


def option_names(exclude: str = "") -> set:
    """The option names every registered method but ``exclude`` declares."""
    return {key for name in REGISTRY if name != exclude for key in get(name).options}


def load_all() -> None:
    """Imports every registered method module (their gin configurables)."""
    for name in REGISTRY:
        get(name)


__all__ = ["LabelDependencyModel", "Method", "REGISTRY", "Run", "SettingsError", "get",
           "load_all", "option_names", "register"]
