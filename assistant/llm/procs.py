"""Processes of the managed server read from /proc (Linux): liveness, the whole process group, memory.

psutil is not a dependency; these few reads are all the server needs.
"""
from __future__ import annotations

import os
import signal
from pathlib import Path

from assistant.llm.keepalive import alive  # noqa: F401  (the supervisor runs as a bare script: the one copy lives there)

PROC = Path("/proc")


def cmdline(pid: int) -> str:
    try:
        return (PROC / str(pid) / "cmdline").read_bytes().replace(b"\0", b" ").decode("utf-8", "replace")
    except OSError:
        return ""


def signal_group(pid: int, sig: signal.Signals) -> None:
    """Signal pid's process group (the server's workers are in it), or pid alone if that fails."""
    try:
        os.killpg(os.getpgid(pid), sig)
    except (ProcessLookupError, PermissionError):
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            pass


def _stat_fields(pid: int) -> list[str]:
    """Fields of /proc/PID/stat after the command name: [state, ppid, pgrp, ...]."""
    return (PROC / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()


def family(pid: int) -> list[int]:
    """pid, the members of its process group and all their descendants (vLLM's engine workers)."""
    parent_of: dict[int, int] = {}
    members = {pid}
    try:
        group = os.getpgid(pid)
    except ProcessLookupError:
        return []
    for entry in PROC.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = _stat_fields(int(entry.name))
        except (OSError, IndexError):
            continue
        parent_of[int(entry.name)] = int(fields[1])
        if int(fields[2]) == group and fields[0] != "Z":
            members.add(int(entry.name))
    grew = True
    while grew:
        children = {child for child, parent in parent_of.items() if parent in members} - members
        members |= children
        grew = bool(children)
    return sorted(members)


def memory(pids: list[int]) -> tuple[int, int]:
    """(RSS, PSS) in bytes summed over pids. RSS counts pages shared between the processes once per
    process; PSS splits them, so it is what stopping them gives back."""
    rss = pss = 0
    for pid in pids:
        try:
            text = (PROC / str(pid) / "smaps_rollup").read_text()
        except OSError:
            continue
        for line in text.splitlines():
            key, _, value = line.partition(":")
            if key in ("Rss", "Pss"):
                kib = int(value.split()[0]) * 1024
                if key == "Rss":
                    rss += kib
                else:
                    pss += kib
    return rss, pss
