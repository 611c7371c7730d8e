"""Types for tests; aliases keep pytest from collecting Quart's ``Test*`` protocols as tests."""

from __future__ import annotations

from quart.typing import TestClientProtocol

Client = TestClientProtocol
