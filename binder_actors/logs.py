"""Logging for every process of binder-actors: one key=value line per event, never a secret."""

from __future__ import annotations

import logging

FORMAT = "%(asctime)s %(levelname)s %(name)s %(message)s"


def setup_logging(level: int = logging.INFO) -> None:
    """Log binder_actors' records at `level` (idempotent: safe in every actor's __init__)."""
    logger = logging.getLogger("binder_actors")
    if not logger.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter(FORMAT))
        logger.addHandler(handler)
        logger.setLevel(level)
        logger.propagate = False
