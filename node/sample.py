"""A sample data space: a companies dataset and the credit-scoring policy of PRODUCT.md.

``make demo``, ``make soak``, the benchmarks and the tests all build their data spaces from
these, so a sample only has to be right once.
"""

from __future__ import annotations

import socket
from pathlib import Path

COMPANIES_HEADER = "company_id,legal_person,phone,revenue,city,notes"

POLICY = """\
[offer]
purposes = ["credit-scoring"]
consumer_domains = ["finance.qingdao"]
approval = "{approval}"

[fields]
company_id = "plain"
legal_person = "mask"
phone = "hash"
revenue = "plain"

[limits]
max_deliveries = {max_deliveries}
period = "1d"
retention = "{retention}"
max_reads = {max_reads}
valid_for = "90d"
onward_transfer = false
"""


def free_port() -> int:
    """A loopback port nobody listens on right now, for a local node."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def write_companies(path: Path, rows: int) -> Path:
    """``rows`` companies as CSV: an id, a person's name, a phone, revenue, city, notes."""
    with path.open("w") as f:
        f.write(COMPANIES_HEADER + "\n")
        for i in range(rows):
            f.write(f"C{i:06d},Zhang San{i},1380000{i:04d},{i * 1.5},qingdao,note {i}\n")
    return path


def write_policy(path: Path, *, approval: str = "auto", max_deliveries: int = 24,
                 retention: str = "7d", max_reads: int = 10) -> Path:
    """The policy terms file of PRODUCT.md, with the limits a caller needs changed."""
    path.write_text(POLICY.format(approval=approval, max_deliveries=max_deliveries,
                                  retention=retention, max_reads=max_reads))
    return path
