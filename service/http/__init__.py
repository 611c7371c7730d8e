"""The HTTP layer: the only package that imports Quart.

It parses and validates requests, hands the work to the core (``service.models``,
``service.batching``) and serializes the answers; it owns no business logic.
"""

from __future__ import annotations

from service.http.app import create_app

__all__ = ["create_app"]
