"""Provider commands for data and offers, and the consumer's view of a peer's catalog."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from node.cli import exits
from node.cli.cmd_node import open_home
from node.cli.output import Output
from policies.durations import format_duration


def register(sub: Any) -> None:
    from node.cli.main import add_command

    dataset = sub.add_parser("dataset", help="Register datasets (provider).",
                             description="Register datasets (provider).")
    dataset_sub = dataset.add_subparsers(dest="dataset_command", required=True, metavar="ACTION")
    p = add_command(dataset_sub, "add", "Import a CSV or JSON Lines file as a dataset.")
    p.add_argument("dataset_id", metavar="DATASET_ID")
    p.add_argument("file", metavar="FILE", help="CSV with a header row, or JSON Lines")
    p.add_argument("--classification", required=True,
                   choices=["public", "internal", "sensitive", "core"],
                   help="core never leaves the node; sensitive needs manual approval")
    p.set_defaults(run=run_dataset_add)
    p = add_command(dataset_sub, "list", "List datasets.")
    p.set_defaults(run=run_dataset_list)

    offer = sub.add_parser("offer", help="Publish and list offers (provider).",
                           description="Publish and list offers (provider).")
    offer_sub = offer.add_subparsers(dest="offer_command", required=True, metavar="ACTION")
    p = add_command(offer_sub, "add", "Offer a dataset under the terms of a policy file.")
    p.add_argument("offer_id", metavar="OFFER_ID")
    p.add_argument("--dataset", required=True, metavar="DATASET_ID")
    p.add_argument("--policy", required=True, metavar="POLICY_FILE", help="policy terms (TOML)")
    p.set_defaults(run=run_offer_add)
    p = add_command(offer_sub, "list", "List this node's offers.")
    p.set_defaults(run=run_offer_list)

    p = add_command(sub, "catalog", "Show the peer's offers this node may negotiate.")
    p.add_argument("peer", metavar="PEER", help="the peer's name")
    p.set_defaults(run=run_catalog)


def run_dataset_add(args: argparse.Namespace, out: Output) -> int:
    from node.datasets import add_dataset

    dataset = add_dataset(open_home(args), args.dataset_id, Path(args.file), args.classification)
    out.result({"dataset_id": dataset.dataset_id, "rows": dataset.row_count,
                "fields": list(dataset.fields), "types": dataset.types,
                "classification": dataset.classification,
                "registration": dataset.source_digest},
               f"dataset {dataset.dataset_id}: {dataset.row_count} rows, fields "
               f"{', '.join(dataset.fields)} ({dataset.classification})")
    return exits.OK


def run_dataset_list(args: argparse.Namespace, out: Output) -> int:
    from node.datasets import list_datasets

    rows = [{"dataset_id": d.dataset_id, "classification": d.classification,
             "rows": d.row_count, "fields": ",".join(d.fields)}
            for d in list_datasets(open_home(args))]
    out.table("datasets", rows, ["dataset_id", "classification", "rows", "fields"],
              "no datasets")
    return exits.OK


def _offer_row(offer_id: str, dataset_id: str, terms: dict[str, Any]) -> dict[str, Any]:
    limits = terms["limits"]
    return {"offer_id": offer_id, "dataset_id": dataset_id,
            "purposes": ",".join(terms["offer"]["purposes"]),
            "fields": ",".join(f"{n}:{t}" for n, t in terms["fields"]),
            "approval": terms["offer"]["approval"],
            "frequency": f"{limits['max_deliveries']}/{format_duration(limits['period'])}",
            "retention": format_duration(limits["retention"]), "terms": terms}


def run_offer_add(args: argparse.Namespace, out: Output) -> int:
    from node.offers import add_offer

    offer = add_offer(open_home(args), args.offer_id, args.dataset, Path(args.policy))
    out.result(_offer_row(offer.offer_id, offer.dataset_id, offer.terms.to_dict()),
               f"offer {offer.offer_id} of dataset {offer.dataset_id} published "
               f"({offer.terms.approval} approval)")
    return exits.OK


def run_offer_list(args: argparse.Namespace, out: Output) -> int:
    from node.offers import list_offers

    rows = [_offer_row(o.offer_id, o.dataset_id, o.terms.to_dict())
            for o in list_offers(open_home(args))]
    out.table("offers", rows, ["offer_id", "dataset_id", "purposes", "fields", "approval",
                               "frequency", "retention"], "no offers")
    return exits.OK


def run_catalog(args: argparse.Namespace, out: Output) -> int:
    from connector.consumer import catalog

    rows = [{**_offer_row(o["offer_id"], o["dataset_id"], o["terms"]), "rows": o["rows"],
             "classification": o["classification"]}
            for o in catalog(open_home(args), args.peer)]
    out.table("offers", rows, ["offer_id", "dataset_id", "rows", "purposes", "fields",
                               "approval", "frequency", "retention"],
              f"{args.peer} offers nothing to this node's domain")
    return exits.OK
