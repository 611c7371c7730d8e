"""The runtime objects one app owns, kept in one typed place on the app."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from quart import Quart
from quart import current_app

from service.errors import ShuttingDownError
from service.metrics import Metrics
from service.models import ModelRegistry
from service.settings import Settings

if TYPE_CHECKING:  # only a process that traces imports OpenTelemetry (service.tracing)
    from service.tracing import Tracing

__all__ = ["AppState", "get_state"]

_EXTENSION_KEY = "prediction_service"


@dataclass(slots=True)
class AppState:
    """Settings, the model registry, the metrics and the serving flags of one app."""

    settings: Settings
    registry: ModelRegistry
    metrics: Metrics
    tracing: Tracing | None = None
    """This process's tracer when ``PREDICTION_TRACING`` is on."""
    draining: bool = False
    """Set on SIGTERM: readiness turns 503 while accepted requests finish."""

    def require_ready(self) -> None:
        """Raise unless the models are loaded and the server is not draining.

        Raises:
            ShuttingDownError: draining, or no model loaded yet (503 with Retry-After).
        """
        if self.draining:
            raise ShuttingDownError("The server is draining.")
        if not self.registry.ready:
            raise ShuttingDownError("No model is loaded yet.")

    def attach(self, app: Quart) -> None:
        app.extensions[_EXTENSION_KEY] = self


def get_state(app: Quart | None = None) -> AppState:
    """The state of ``app`` (default: the app handling the current request)."""
    target = app if app is not None else current_app
    state: AppState = target.extensions[_EXTENSION_KEY]
    return state
