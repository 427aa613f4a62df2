"""Memory of the window's processes from /proc (Linux): RSS of one process and of a process tree."""
from __future__ import annotations

import os


def rss_mb(pid: int | None = None) -> float:
    """Resident set size (VmRSS) of `pid` (default: this process) in MB (2**20 bytes); 0 if gone."""
    try:
        with open(f"/proc/{pid or os.getpid()}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def children(pid: int) -> list[int]:
    """All descendants of `pid` (children, grandchildren, …)."""
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        try:
            with open(f"/proc/{p}/task/{p}/children") as f:
                kids = [int(x) for x in f.read().split()]
        except OSError:
            kids = []
        out += kids
        todo += kids
    return out


def tree_rss_mb(pid: int | None = None) -> dict[str, float]:
    """{'gui': RSS of `pid`, 'children': sum over its descendants, 'total': both} in MB. RSS counts
    shared library pages once per process, so 'total' is what `ps`/`top` users would add up."""
    pid = pid or os.getpid()
    gui = rss_mb(pid)
    kids = sum(rss_mb(c) for c in children(pid))
    return {"gui": gui, "children": kids, "total": gui + kids}
