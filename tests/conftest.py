"""Fixtures shared by several test modules."""

from __future__ import annotations

import os
from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The public benchmark files (XSTest, GSM8K, ...): ``$ASCL_SHARED_DATA``, else ../shared/data.

    Tests that need them are skipped, saying where they looked, when the folder is absent.
    """
    default = Path(__file__).resolve().parents[1].parent / "shared" / "data"
    data = Path(os.environ.get("ASCL_SHARED_DATA", default))
    if not data.is_dir():
        pytest.skip(f"shared data not found under {data} (set ASCL_SHARED_DATA)")
    return data
