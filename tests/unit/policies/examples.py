"""Shared fixtures: the policy terms file of PRODUCT.md, verbatim, and edits of it."""

from __future__ import annotations

EXAMPLE = '''\
[offer]
purposes = ["credit-scoring"]        # the consumer must declare one of these
consumer_domains = ["finance.qingdao"]  # only nodes of these domains may negotiate
approval = "auto"                    # or "manual": requests wait for the operator

[fields]                             # fields not listed are never delivered
company_id = "plain"
legal_person = "mask"                # masked: first and last character kept
phone = "hash"                       # keyed hash: a stable pseudonym per agreement
revenue = "plain"

[limits]
max_deliveries = 24                  # at most this many deliveries ...
period = "1d"                        # ... per period
retention = "7d"                     # each delivery is destroyed at most this long after receipt
max_reads = 10                       # a delivery is destroyed after the application read it this often
valid_for = "90d"                    # longest agreement lifetime
onward_transfer = false              # the consumer may not offer this data on
'''  # noqa: E501 - verbatim from PRODUCT.md

#: Every ``key = value`` line of the example, by its dotted key.
LINES = {
    f"{section}.{line.split('=')[0].strip()}": line
    for section, block in (("offer", EXAMPLE.split("[fields]")[0]),
                           ("fields", EXAMPLE.split("[fields]")[1].split("[limits]")[0]),
                           ("limits", EXAMPLE.split("[limits]")[1]))
    for line in block.splitlines()
    if "=" in line and not line.startswith("[")
}


def with_line(key: str, value: str) -> str:
    """The example with the line of ``key`` (e.g. ``limits.retention``) set to ``value``."""
    name = key.split(".", 1)[1]
    return EXAMPLE.replace(LINES[key], f"{name} = {value}")


def without_line(key: str) -> str:
    """The example without the line of ``key``."""
    return EXAMPLE.replace(LINES[key] + "\n", "")


def adding(section: str, line: str) -> str:
    """The example with ``line`` added at the start of ``[section]``."""
    return EXAMPLE.replace(f"[{section}]", f"[{section}]\n{line}", 1)
