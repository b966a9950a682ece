"""Logging and metrics: the only place that decides how the replicator reports itself."""

from replicator.observability.logs import get_logger, setup_logging
from replicator.observability.metrics import Metrics

__all__ = ["Metrics", "get_logger", "setup_logging"]
