"""The feature schema a manifest may carry: column names, types, missing values, categories.

A version whose manifest has ``features`` was fitted on a table (a pandas DataFrame with typed
columns) and is served one: requests may carry strings, booleans and missing values. A manifest
without it describes an all-numeric model, served from a float64 matrix as before.
"""

from __future__ import annotations

from collections.abc import Mapping
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final
from typing import Literal
from typing import get_args

__all__ = ["FEATURE_TYPES", "Feature", "FeatureSchema", "FeatureType"]

FeatureType = Literal["float", "int", "bool", "string"]
FEATURE_TYPES: Final[tuple[FeatureType, ...]] = get_args(FeatureType)
_KEYS: Final = frozenset({"name", "type", "nullable", "categories"})


@dataclass(frozen=True, slots=True)
class Feature:
    """One input column.

    Raises:
        ValueError: On construction, for an empty name, an unknown type, or categories on a
            column that is not a string column.
    """

    name: str
    type: FeatureType
    nullable: bool = False
    """Whether a request may leave the value out (``null``, or an absent field in an object row)."""
    categories: tuple[str, ...] | None = None
    """The values a string column's encoder knows, where the model knows them; else any string."""

    def __post_init__(self) -> None:
        # Typed as object: from_json passes a manifest's values unchecked.
        name: object = self.name
        nullable: object = self.nullable
        if not isinstance(name, str) or not name:
            raise ValueError(f"a feature name must be a non-empty string, got {name!r}")
        if self.type not in FEATURE_TYPES:
            raise ValueError(
                f"feature {self.name!r}: type must be one of {', '.join(FEATURE_TYPES)}, "
                f"got {self.type!r}"
            )
        if not isinstance(nullable, bool):
            raise ValueError(f"feature {self.name!r}: nullable must be true or false")
        if self.categories is not None:
            if self.type != "string":
                raise ValueError(f"feature {self.name!r}: only string features have categories")
            if not all(isinstance(item, str) for item in self.categories):
                raise ValueError(f"feature {self.name!r}: categories must be strings")

    def to_json(self) -> dict[str, object]:
        """Return the feature as the manifest spells it (``categories`` only when known)."""
        document: dict[str, object] = {
            "name": self.name,
            "type": self.type,
            "nullable": self.nullable,
        }
        if self.categories is not None:
            document["categories"] = list(self.categories)
        return document

    @classmethod
    def from_json(cls, value: object) -> Feature:
        """Read one feature object of a manifest or a ``--schema`` file.

        Raises:
            ValueError: Not an object, unknown keys, or a bad field.
        """
        if not isinstance(value, Mapping):
            raise ValueError(f"each feature must be an object, got {type(value).__name__}")
        unknown = sorted(set(value) - _KEYS)
        if unknown:
            raise ValueError(f"a feature has unknown key {unknown[0]!r}")
        if "name" not in value or "type" not in value:
            raise ValueError("each feature needs a 'name' and a 'type'")
        categories = value.get("categories")
        if categories is not None and not isinstance(categories, list):
            raise ValueError(f"feature {value['name']!r}: categories must be a list of strings")
        return cls(
            name=value["name"],
            type=value["type"],
            nullable=value.get("nullable", False),
            categories=None if categories is None else tuple(categories),
        )


@dataclass(frozen=True, slots=True)
class FeatureSchema:
    """A model's input columns, in the order the model was fitted on them.

    Raises:
        ValueError: On construction, for no features or duplicate names.
    """

    features: tuple[Feature, ...]

    def __post_init__(self) -> None:
        if not self.features:
            raise ValueError("a feature schema needs at least one feature")
        names = self.names
        if len(set(names)) != len(names):
            duplicate = next(name for name in names if names.count(name) > 1)
            raise ValueError(f"feature {duplicate!r} appears twice")

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(feature.name for feature in self.features)

    def to_json(self) -> list[dict[str, object]]:
        return [feature.to_json() for feature in self.features]

    @classmethod
    def from_json(cls, value: object) -> FeatureSchema:
        """Read a list of feature objects.

        Raises:
            ValueError: Not a non-empty list of valid features with unique names.
        """
        if not isinstance(value, Sequence) or isinstance(value, str | bytes):
            raise ValueError(f"the features must be a list, got {type(value).__name__}")
        return cls(tuple(Feature.from_json(item) for item in value))
