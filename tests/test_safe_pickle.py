import os
import pickle
from collections import OrderedDict

import numpy as np
import pytest

from backend import safe_pickle
from backend.errors import BackendError


def test_plain_data_round_trips():
    data = {"FaceTalk_a": np.arange(12, dtype=np.float32).reshape(4, 3),
            "nested": [1, 2.5, ("x", b"raw")], "ordered": OrderedDict(a=np.int16(3))}
    loaded = safe_pickle.loads(pickle.dumps(data, protocol=2))
    np.testing.assert_array_equal(loaded["FaceTalk_a"], data["FaceTalk_a"])
    assert loaded["nested"] == [1, 2.5, ("x", b"raw")]
    assert loaded["ordered"]["a"] == 3


class _Exploit:
    def __reduce__(self):
        return (os.system, ("echo pwned",))


def test_malicious_pickle_is_refused(tmp_path):
    path = tmp_path / "templates.pkl"
    path.write_bytes(pickle.dumps({"subject": _Exploit()}))
    with pytest.raises(safe_pickle.UnsafePickleError, match="refused to load 'posix.system'"):
        safe_pickle.load(path)


def test_truncated_and_missing_files_are_clear_errors(tmp_path):
    path = tmp_path / "broken.pkl"
    path.write_bytes(pickle.dumps({"a": np.zeros(100)})[:40])
    with pytest.raises(BackendError, match="could not read pickle data"):
        safe_pickle.load(path)
    with pytest.raises(BackendError, match="pickle file not found"):
        safe_pickle.load(tmp_path / "absent.pkl")
