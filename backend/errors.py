"""The one exception family the backend raises for bad input.

Every error a user can cause (a bad file, a wrong mesh, a missing model) is a `BackendError`, so the
command line and the Blender add-on can catch one type and show its message as it is.
"""


class BackendError(Exception):
    """Base of every user-facing backend error; the message is meant to be shown verbatim."""


class AudioError(BackendError):
    """Audio that cannot be used: missing, unreadable, unsupported, empty, silent, too long..."""


class MeshError(BackendError):
    """A mesh that cannot be read or is not FLAME topology."""


class ModelError(BackendError):
    """A model file that is missing, corrupt, or does not fit the inputs."""


class MetricError(BackendError):
    """Inputs a metric cannot be computed on (wrong shapes, non-finite values, too few frames)."""
