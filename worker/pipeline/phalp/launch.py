"""``python -m worker.pipeline.phalp.launch -- PROGRAM ARG...``: run PROGRAM so that it dies with the
pipeline child that started it.

Arms the parent-death signal (SIGKILL when the process named in POSE_PARENT_PID, the child, dies:
worker/parent_death.py), then replaces itself with PROGRAM; the signal survives the exec. Done here
rather than in a ``preexec_fn`` because the child may be multi-threaded (torch, decoding threads),
where running Python between fork and exec is unsafe. The worker kills the child's whole process
group on a deadline or cancel; this covers the child dying alone (a crash).
"""

from __future__ import annotations

import os
import signal
import sys

from worker.parent_death import die_with_parent


def main(argv: list[str]) -> int:
    command = argv[1:] if argv[:1] == ["--"] else argv
    if not command:
        print("usage: python -m worker.pipeline.phalp.launch -- PROGRAM [ARG...]", file=sys.stderr)
        return 2
    die_with_parent(signal.SIGKILL)
    try:
        os.execv(command[0], command)
    except OSError as exc:
        print(f"cannot run {command[0]}: {exc}", file=sys.stderr)
        return 127
    return 0  # not reached: execv replaced this process


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
