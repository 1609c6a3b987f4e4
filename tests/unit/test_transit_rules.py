"""TransitEncryptionEnabled / TransitEncryptionMode at creation and AWS's step-by-step path on modify."""

from __future__ import annotations

import pytest

from cachefleet.model import transit
from cachefleet.model.errors import InvalidParameterCombination, InvalidParameterValue
from cachefleet.model.transit import OFF, Transit, TransitMode

PREFERRED = Transit(True, TransitMode.PREFERRED)
REQUIRED = Transit(True, TransitMode.REQUIRED)


def test_creation() -> None:
    assert transit.at_creation(None, None) == OFF
    assert transit.at_creation(False, None) == OFF
    assert transit.at_creation(True, None) == REQUIRED  # AWS's default with TLS on
    assert transit.at_creation(True, "preferred") == PREFERRED
    assert not REQUIRED.accepts_plaintext
    assert PREFERRED.accepts_plaintext
    with pytest.raises(InvalidParameterCombination, match="requires TransitEncryptionEnabled"):
        transit.at_creation(False, "required")
    with pytest.raises(InvalidParameterValue, match="preferred or required"):
        transit.at_creation(True, "sometimes")


@pytest.mark.parametrize(
    ("current", "enabled", "mode", "after"),
    [
        (OFF, True, "preferred", PREFERRED),
        (PREFERRED, None, "required", REQUIRED),
        (PREFERRED, True, "required", REQUIRED),
        (REQUIRED, None, "preferred", PREFERRED),
        (PREFERRED, False, None, OFF),
        (REQUIRED, None, None, REQUIRED),
        (REQUIRED, True, "required", REQUIRED),
    ],
)
def test_allowed_steps(current: Transit, enabled: bool | None, mode: str | None, after: Transit) -> None:
    assert transit.modified(current, enabled, mode, access_control=False) == after


@pytest.mark.parametrize(
    ("current", "enabled", "mode", "message"),
    [
        (OFF, True, None, "preferred in the same call"),
        (OFF, True, "required", "preferred in the same call"),
        (REQUIRED, False, None, "preferred first"),
        (OFF, False, "preferred", "requires TransitEncryptionEnabled"),
    ],
)
def test_refused_steps(current: Transit, enabled: bool | None, mode: str | None, message: str) -> None:
    with pytest.raises(InvalidParameterCombination, match=message):
        transit.modified(current, enabled, mode, access_control=False)


def test_no_change_of_tls_under_access_control() -> None:
    with pytest.raises(InvalidParameterCombination, match="access control enabled clusters"):
        transit.modified(REQUIRED, None, "preferred", access_control=True)
    assert transit.modified(REQUIRED, True, "required", access_control=True) == REQUIRED


def test_a_mode_goes_with_tls_only() -> None:
    with pytest.raises(ValueError, match="only with it"):
        Transit(False, TransitMode.REQUIRED)
    with pytest.raises(ValueError, match="only with it"):
        Transit(True, None)
