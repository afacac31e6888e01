"""A secret value that does not print itself."""

from __future__ import annotations

__all__ = ["Secret"]


class Secret:
    """Holds a secret; `repr`/`str` show only its name. Call `reveal()` at the one point of use."""

    __slots__ = ("_value", "name")

    def __init__(self, name: str, value: str) -> None:
        self.name = name
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return f"Secret(name={self.name!r}, value='********')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other.name == self.name and other._value == self._value

    def __hash__(self) -> int:
        return hash(self.name)
