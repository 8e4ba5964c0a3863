"""Named fault points for the fault suite (tests/test_faults.py): a real process is stopped at a chosen
point of its work and killed there with SIGKILL by the test, as a crash or `kill -9` would.

Set PAPER_ASSISTANT_FAULT=<point> (optionally <point>@<n>: the n-th time it is reached); the process then
prints ``FAULT <point> <pid>`` on stderr and waits to be killed. Unset, a fault point costs one dict lookup.
"""
from __future__ import annotations

import os
import sys
import time

ENV = "PAPER_ASSISTANT_FAULT"
_seen: dict[str, int] = {}


def fault_point(name: str) -> None:
    wanted = os.environ.get(ENV)
    if not wanted:
        return
    point, _, nth = wanted.partition("@")
    if point != name:
        return
    _seen[name] = _seen.get(name, 0) + 1
    if _seen[name] != int(nth or 1):
        return
    print(f"FAULT {name} {os.getpid()}", file=sys.stderr, flush=True)
    while True:  # held here, locks and files as they are, until the test kills the process
        time.sleep(3600)
