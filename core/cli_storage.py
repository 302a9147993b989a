"""`python -m core storage`: what the data folder holds, its disk budget, and deleting runs, datasets and caches.

python -m core storage [--delete ID [--delete ID ...]] [--budget GB] [--evict]
"""

from __future__ import annotations

import argparse
import sys

import pandas as pd

from core import paths, storage


def add_parser(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "storage",
        help="list datasets, runs and caches with their sizes; delete them; set the disk budget",
        description="List everything in the data folder with its size, largest first. Caches (decoded images, "
        "features, exported graphs) are evicted least recently used first when the folder is over its disk "
        f"budget (${storage.BUDGET_ENV}, else --budget, default {storage.DEFAULT_BUDGET_GB:g} GB); "
        "never one a running sweep uses.",
    )
    parser.add_argument("--delete", action="append", default=[], metavar="ID", help="delete an entry (repeatable)")
    parser.add_argument("--budget", type=float, metavar="GB", help="save the disk budget in GB")
    parser.add_argument("--evict", action="store_true", help="evict caches now until the folder fits its budget")


def run(args: argparse.Namespace) -> int:
    try:
        if args.budget is not None:
            storage.set_budget(args.budget)
        for entry_id in args.delete:
            entry = storage.delete(entry_id)
            print(f"deleted {entry.id} ({entry.bytes / 1024**2:.1f} MB)")
        if args.evict:
            for entry in storage.evict():
                print(f"evicted {entry.id} ({entry.bytes / 1024**2:.1f} MB)")
        budget = storage.budget_bytes()
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    rows = [storage.describe(entry) for entry in storage.entries()]
    if rows:
        print(pd.DataFrame(rows).to_string(index=False))
    total = storage.total_bytes()
    print(f"{total / storage.GB:.2f} GB used of a {budget / storage.GB:g} GB budget in {paths.home()}")
    return 0
