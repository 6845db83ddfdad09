"""Training, evaluation and ONNX export (torch). May import `backend`; never imported by it."""
