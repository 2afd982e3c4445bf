"""The node's configuration file, ``HOME/config.toml``.

Written by ``init`` and meant to be edited by the operator, so it is TOML and every key is
checked when the node opens: an unknown key or a wrong type is refused naming the key.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from node.errors import InvalidHome
from node.identity import check_address
from node.ids import check_domain, check_id

DEFAULT_CLOCK_SKEW_S = 300
DEFAULT_ENVELOPE_ROWS = 8000


@dataclass(frozen=True)
class Config:
    name: str
    domain: str
    listen: str
    # Domains whose trusted peers may call this node; "*" accepts every trusted peer's domain.
    accept_domains: tuple[str, ...] = ("*",)
    clock_skew_seconds: int = DEFAULT_CLOCK_SKEW_S
    # Optional TLS on the node's port; with tls_client_ca the node requires client certificates.
    tls_cert: str = ""
    tls_key: str = ""
    tls_client_ca: str = ""
    # CA that signs peers' server certificates; when set, this node dials peers over TLS.
    tls_peer_ca: str = ""
    max_message_bytes: int = 16 * 1024 * 1024
    max_streams_per_peer: int = 8
    # Rows per envelope this node sends as a provider (fewer when rows are wide, see
    # node/delivery.py): larger envelopes cost less per row, smaller ones hold less memory.
    envelope_rows: int = DEFAULT_ENVELOPE_ROWS
    extra: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    def __post_init__(self) -> None:
        check_id(self.name, what="node name")
        check_domain(self.domain)
        check_address(self.listen)
        for domain in self.accept_domains:
            if domain != "*":
                check_domain(domain)
        # Bounds an edited file must keep: gRPC takes sizes as a C int (2^31 and more raise
        # OverflowError in every command that opens a channel), and the nonce store keeps
        # twice the skew, as SQLite integers.
        for key, low, high in _BOUNDS:
            value = getattr(self, key)
            if not low <= value <= high:
                raise InvalidHome(f"config {key} must be a whole number from {low} to {high}; "
                                  f"found {value}")

    def to_toml(self) -> str:
        lines = ["# trustspace node configuration", "[node]"]
        for f in fields(self):
            if f.name == "extra":
                continue
            lines.append(f"{f.name} = {_toml_value(getattr(self, f.name))}")
        return "\n".join(lines) + "\n"

    @classmethod
    def load(cls, path: Path) -> Config:
        try:
            raw = tomllib.loads(path.read_text("utf-8"))
        except FileNotFoundError:
            raise InvalidHome(f"{path.parent} is not a trustspace home (no config.toml); "
                              "create one with 'trustspace init'") from None
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
            raise InvalidHome(f"{path} is not valid TOML: {e}") from None
        except OSError as e:  # a folder, or a file the node may not read
            raise InvalidHome(f"cannot read {path}: {e.strerror or 'read error'}") from None
        unknown_sections = set(raw) - {"node"}
        if unknown_sections:
            raise InvalidHome(f"{path} has an unknown section "
                              f"[{_shown_key(sorted(unknown_sections)[0])}]")
        section = raw.get("node", {})
        if not isinstance(section, dict):
            raise InvalidHome(f"{path} must hold a [node] table; found node as a value")
        known = {f.name: f for f in fields(cls) if f.name != "extra"}
        values: dict[str, Any] = {}
        for key, value in section.items():
            if key not in known:
                raise InvalidHome(f"{path} has an unknown key node.{_shown_key(key)}")
            expected = type(getattr(_DEFAULTS, key, "")) if key in _DEFAULT_KEYS else str
            if expected is tuple:
                if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                    raise InvalidHome(f"config node.{key} must be a list of strings")
                value = tuple(value)
            elif not isinstance(value, expected) or isinstance(value, bool):
                raise InvalidHome(f"config node.{key} must be of type {expected.__name__}")
            values[key] = value
        for key in ("name", "domain", "listen"):
            if key not in values:
                raise InvalidHome(f"{path} is missing node.{key}")
        try:
            return cls(**values)
        except InvalidHome:
            raise
        except Exception as e:  # a validator's BadInput names the problem; keep its sentence
            raise InvalidHome(f"{path}: {e}") from None


def _shown_key(key: str) -> str:
    """A key of the file in one short line: quoted and escaped unless it is plain."""
    if key.isprintable() and 0 < len(key) <= 64 and " " not in key:
        return key
    return ascii(key[:64]) + ("..." if len(key) > 64 else "")


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, (tuple, list)):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    text = str(value).replace("\\", "\\\\").replace('"', '\\"')
    return f'"{text}"'


_BOUNDS = (("clock_skew_seconds", 1, 86_400), ("max_message_bytes", 4096, 2**31 - 1),
           ("max_streams_per_peer", 1, 10_000), ("envelope_rows", 1, 1_000_000))
_DEFAULTS = Config("x", "x", "x:1")
_DEFAULT_KEYS = {f.name for f in fields(Config)} - {"name", "domain", "listen", "extra"}
