from types import ModuleType

import cachefleet_client


def _isort_key(name: str) -> tuple[int, str]:
    # The order ruff's RUF022 enforces: CONSTANTS, then Classes, then functions.
    kind = 0 if name.isupper() else 1 if name[0].isupper() else 2
    return kind, name


def test_all_public_names_are_exported_in_order() -> None:
    public = [
        name
        for name, value in vars(cachefleet_client).items()
        if not name.startswith("_") and not isinstance(value, ModuleType)
    ]
    assert cachefleet_client.__all__ == sorted(public, key=_isort_key)
