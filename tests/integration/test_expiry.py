"""When an agreement's lifetime ends, so does the permission to use its data."""

from __future__ import annotations

import time

from tests.conftest import Node
from tests.integration.conftest import APP, audit, negotiate, publish


def test_data_fetched_in_time_cannot_be_read_after_the_agreement_expires(
        running: dict[str, Node], tmp_path) -> None:  # type: ignore[no-untyped-def]
    provider, consumer = running["provider"], running["consumer"]
    publish(provider, tmp_path, rows=30)
    agreement = negotiate(consumer, "--valid-for", "3s")
    consumer.cli("fetch", agreement, check=True)
    token = consumer.cli("app add", APP, check=True).stdout.strip().splitlines()[-1]
    assert consumer.cli("read", agreement, "--app", APP, "--token", token).returncode == 0
    time.sleep(3.5)  # past the 3-second lifetime: a condition to reach, not a timing check
    refused = consumer.cli("read", agreement, "--app", APP, "--token", token)
    assert refused.returncode == 3, refused.stderr
    assert "expired" in refused.stderr and "may no longer be read" in refused.stderr
    assert refused.stdout == ""
    refusals = audit(consumer, "data.read_refused")
    assert [r["agreement"] for r in refusals] == [agreement]
