"""Fixtures shared by several test modules: benchmark data, a fake OpenAI-compatible endpoint."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from fake_openai import FakeOpenAIServer


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


# --------------------------------------------------------------------------- fake endpoint


@pytest.fixture
def openai_server() -> Iterator[FakeOpenAIServer]:
    """A fresh fake OpenAI-compatible endpoint (fake_openai.py), serving until the test ends."""
    server = FakeOpenAIServer()
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()
