"""The operations users launch: plain functions of (parameters, context), no Flask.

Importing this package registers every kind; add a module here and import it below.
"""

from webapp.operations import sleep

__all__ = ["sleep"]
