from __future__ import annotations

import pytest

from threadline.domain import errors


def test_missing_extra_names_the_extra_and_the_fix() -> None:
    with pytest.raises(errors.MissingExtra) as caught:
        errors.require_module("threadline_no_such_module", extra="postgres", feature="the PostgreSQL store")
    message = str(caught.value)
    assert "threadline[postgres]" in message and "pip install" in message and "PostgreSQL" in message


def test_invalid_input_names_the_field() -> None:
    assert str(errors.InvalidInput("must be positive", field="limit")) == "limit: must be positive"
