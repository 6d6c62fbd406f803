"""The curation layer's user-facing error."""

from __future__ import annotations


class CurationError(ValueError):
    """A user-facing curation problem (unknown embedder, bad parameter, mismatched store).

    The message says what is wrong and how to fix it; the CLI prints it
    without a traceback. It subclasses ``ValueError`` because every case is a
    bad value handed in by a caller or a config file.
    """
