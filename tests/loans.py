"""Rows for the ``loans`` demo model (``service.demo``), a table model: strings, a flag,
numbers and missing values."""

from __future__ import annotations

from typing import Any
from typing import Final

ROWS: Final[list[dict[str, Any]]] = [
    {
        "purpose": "car",
        "employment": "salaried",
        "owns_home": True,
        "age": 41,
        "income": 52000.0,
        "loan_amount": 12000.0,
        "open_accounts": 3,
    },
    {
        "purpose": "medical",
        "employment": None,
        "owns_home": False,
        "age": 23,
        "income": None,
        "loan_amount": 30000.5,
        "open_accounts": None,
    },
    {
        "purpose": "business",
        "employment": "self-employed",
        "owns_home": False,
        "age": 35,
        "income": 18000,
        "loan_amount": 45000.0,
        "open_accounts": 7,
    },
]
"""Valid rows as objects: complete, with every nullable value missing, with an int income."""
