"""The running node's process settings."""

from __future__ import annotations

import platform

import pytest

from connector.runtime import limit_heap_arenas


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="the arena limit is glibc's")
def test_the_heap_arena_limit_is_taken_by_glibc() -> None:
    assert limit_heap_arenas() is True
