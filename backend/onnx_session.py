"""The one way the backend opens an ONNX model: CPU, a fixed thread count, no spinning threads.

`intra_op.allow_spinning = "0"` keeps idle onnxruntime threads from busy-waiting: in Blender they would
compete with the UI thread, and on shared CI cores with everything else. OPSET is the ONNX opset every
exported model (speech-mesh encoders, generators) is written with.
"""

from pathlib import Path

import onnxruntime

from backend.errors import ModelError

OPSET = 17


def open_session(path: Path, threads: int = 1) -> onnxruntime.InferenceSession:
    """An onnxruntime CPU session on `path` with `threads` intra-op threads (at least 1); ModelError when the
    file is not a loadable ONNX model (callers check that it exists, with their own hint)."""
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = max(int(threads), 1)
    options.inter_op_num_threads = 1
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    try:
        return onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    except Exception as error:  # onnxruntime raises its own untyped errors for unreadable models
        raise ModelError(f"{path}: not a loadable ONNX model ({str(error).splitlines()[0]})") from None
