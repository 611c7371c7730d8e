"""An async, micro-batching prediction server for scikit-learn models."""

from __future__ import annotations

__version__ = "0.1.0"
