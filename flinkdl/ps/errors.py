"""Errors of the parameter server and its clients."""

from __future__ import annotations


class PsError(ValueError):
    """A request the server refuses (unknown table, wrong dimension, non-finite values, ...)."""
