"""The operations users launch: plain functions of (parameters, context), no Flask.

Importing this package registers every kind; add a module here and import it below.
"""

from webapp.operations import archive, distribute, sleep, snapshots

__all__ = ["archive", "distribute", "sleep", "snapshots"]
