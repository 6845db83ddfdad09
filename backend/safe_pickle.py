"""Load dataset pickles (VOCASET, FaceFormer `templates.pkl`) without running arbitrary code.

`pickle.load` can execute any callable named in the file. Dataset pickles only ever hold plain
containers, numbers, strings and numpy arrays, so the unpickler below admits exactly the globals
needed to rebuild those and refuses everything else with a clear `BackendError`.
"""

import io
import pickle
from pathlib import Path
from typing import Any, Union

from backend.errors import BackendError

_ALLOWED_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"),
    ("numpy._core.multiarray", "scalar"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("builtins", "dict"),
    ("builtins", "list"),
    ("builtins", "tuple"),
    ("builtins", "set"),
    ("builtins", "frozenset"),
    ("builtins", "bytearray"),
    ("collections", "OrderedDict"),
    ("_codecs", "encode"),  # how Python 3 pickles bytes written by Python 2 (latin1 payloads)
}


class UnsafePickleError(BackendError):
    """The pickle names a global outside the plain-data allowlist."""


class _RestrictedUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str):
        if (module, name) not in _ALLOWED_GLOBALS:
            raise UnsafePickleError(
                f"refused to load '{module}.{name}' from a pickle: only plain containers and "
                "numpy arrays are allowed in dataset files")
        return super().find_class(module, name)


def loads(data: bytes, encoding: str = "latin1") -> Any:
    """Unpickle bytes, admitting only plain data (latin1 so Python-2 VOCASET pickles load)."""
    try:
        return _RestrictedUnpickler(io.BytesIO(data), encoding=encoding).load()
    except UnsafePickleError:
        raise
    except Exception as error:  # truncated or corrupt stream
        raise BackendError(f"could not read pickle data: {error}") from error


def load(path: Union[str, Path], encoding: str = "latin1") -> Any:
    """Unpickle a file with the restricted loader; a clear error if it is missing or unsafe."""
    path = Path(path)
    if not path.is_file():
        raise BackendError(f"pickle file not found: {path}")
    try:
        return loads(path.read_bytes(), encoding=encoding)
    except UnsafePickleError as error:
        raise UnsafePickleError(f"{path}: {error}") from None
    except BackendError as error:
        raise BackendError(f"{path}: {error}") from None
