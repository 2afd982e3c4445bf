"""Commands about the node itself: init, serve, status, card, peer."""

from __future__ import annotations

import argparse
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any

from node.cli import exits
from node.cli.output import Output
from node.config import Config
from node.errors import BadInput, MalformedFile, PeerUnavailable
from node.home import Home, home_path
from node.identity import SignedCard


def register(sub: Any) -> None:
    from node.cli.main import add_command

    p = add_command(sub, "init", "Create a node: its home folder, keys and database.")
    p.add_argument("--name", required=True, help="the node's name, as peers will call it")
    p.add_argument("--domain", required=True, help="the node's domain, e.g. finance.qingdao")
    p.add_argument("--listen", required=True, metavar="HOST:PORT",
                   help="where the node listens and peers reach it")
    p.add_argument("--accept-domain", action="append", default=None, metavar="DOMAIN",
                   help="accept calls only from peers of this domain (repeatable; default all)")
    p.add_argument("--tls-cert", default="", help="PEM certificate for the node's port")
    p.add_argument("--tls-key", default="", help="PEM private key for --tls-cert")
    p.add_argument("--tls-client-ca", default="", help="require client certificates of this CA")
    p.add_argument("--tls-peer-ca", default="", help="dial peers over TLS trusting this CA")
    p.set_defaults(run=run_init)

    p = add_command(sub, "serve", "Run the node until SIGINT or SIGTERM.")
    p.set_defaults(run=run_serve)

    p = add_command(sub, "status", "Exit 0 once the node at HOME answers.")
    p.add_argument("--wait", type=float, default=0.0, metavar="SECONDS",
                   help="keep trying this long before giving up")
    p.set_defaults(run=run_status)

    p = add_command(sub, "card", "Print this node's signed node card (JSON).")
    p.set_defaults(run=run_card)

    peer = sub.add_parser("peer", help="Trust, list and remove peers.",
                          description="Trust, list and remove peers.")
    peer_sub = peer.add_subparsers(dest="peer_command", required=True, metavar="ACTION")
    p = add_command(peer_sub, "add", "Verify a peer's card and trust the peer.")
    p.add_argument("card_file", metavar="CARD_FILE", help="the peer's card, as 'card' printed it")
    p.set_defaults(run=run_peer_add)
    p = add_command(peer_sub, "list", "List trusted peers.")
    p.set_defaults(run=run_peer_list)
    p = add_command(peer_sub, "remove", "Stop trusting a peer; its history stays verifiable.")
    p.add_argument("peer", metavar="PEER", help="the peer's name")
    p.set_defaults(run=run_peer_remove)


def open_home(args: argparse.Namespace) -> Home:
    return Home.open(home_path(args.home))


def run_init(args: argparse.Namespace, out: Output) -> int:
    config = Config(name=args.name, domain=args.domain, listen=args.listen,
                    accept_domains=tuple(args.accept_domain or ("*",)),
                    tls_cert=args.tls_cert, tls_key=args.tls_key,
                    tls_client_ca=args.tls_client_ca, tls_peer_ca=args.tls_peer_ca)
    for path in (args.tls_cert, args.tls_key, args.tls_client_ca, args.tls_peer_ca):
        if path and not Path(path).is_file():
            raise BadInput(f"the TLS file {path} does not exist")
    if bool(args.tls_cert) != bool(args.tls_key):
        raise BadInput("--tls-cert and --tls-key go together")
    home = Home.init(home_path(args.home), config)
    out.result({"node_id": home.node_id, "home": str(home.path), "name": config.name,
                "domain": config.domain, "listen": config.listen},
               f"initialised node {config.name} ({home.node_id}) in {home.path}")
    return exits.OK


def run_serve(args: argparse.Namespace, out: Output) -> int:
    from connector import runtime

    home = open_home(args)
    stop = threading.Event()

    def on_signal(signum: int, frame: object) -> None:
        stop.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)

    def ready(port: int) -> None:
        out.result({"node_id": home.node_id, "listen": home.config.listen},
                   f"node {home.config.name} serving on {home.config.listen}")
        sys.stdout.flush()

    runtime.run(home, stop, ready)
    return exits.OK


def run_status(args: argparse.Namespace, out: Output) -> int:
    import grpc
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    from connector.client import open_channel

    home = open_home(args)
    deadline = time.monotonic() + max(args.wait, 0.0)
    address = home.config.listen
    while True:
        channel = open_channel(home, address, own_node=True)
        try:
            response = health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(service=""), timeout=1.0)
            if response.status == health_pb2.HealthCheckResponse.SERVING:
                out.result({"node_id": home.node_id, "listen": address, "serving": True},
                           f"node {home.config.name} is serving on {address}")
                return exits.OK
        except grpc.RpcError:
            pass
        finally:
            channel.close()
        if time.monotonic() >= deadline:
            raise PeerUnavailable(f"the node at {address} did not answer"
                                  + (f" within {args.wait:g} s" if args.wait else ""))
        time.sleep(0.2)


def run_card(args: argparse.Namespace, out: Output) -> int:
    print(open_home(args).signed_card().to_json())
    return exits.OK


def run_peer_add(args: argparse.Namespace, out: Output) -> int:
    from node.peers import add_peer

    home = open_home(args)
    try:
        text = Path(args.card_file).read_text("utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise MalformedFile(f"cannot read the card file {args.card_file}: "
                            f"{getattr(e, 'strerror', None) or 'not UTF-8 text'}") from None
    peer = add_peer(home, SignedCard.from_json(text))
    out.result({"node_id": peer.node_id, "name": peer.name, "domain": peer.card.domain,
                "address": peer.card.address},
               f"trusted peer {peer.name} ({peer.card.domain}) at {peer.card.address}")
    return exits.OK


def run_peer_list(args: argparse.Namespace, out: Output) -> int:
    from node.peers import list_peers

    rows = [{"name": p.name, "domain": p.card.domain, "address": p.card.address,
             "node_id": p.node_id, "trusted": p.trusted} for p in list_peers(open_home(args))]
    out.table("peers", rows, ["name", "domain", "address", "node_id", "trusted"], "no peers")
    return exits.OK


def run_peer_remove(args: argparse.Namespace, out: Output) -> int:
    from node.peers import remove_peer

    peer = remove_peer(open_home(args), args.peer)
    out.result({"node_id": peer.node_id, "name": peer.name, "removed": True},
               f"removed peer {peer.name}; its calls are refused from now on")
    return exits.OK
