"""`python -m hack.cluster up|down|status|controllers|image-tag`: the single-node cluster of
`make e2e-cluster` / `make e2e-down`."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from hack.cluster import images, node, operators, processes, teardown
from hack.cluster.config import daemons
from hack.cluster.layout import NodeLayout
from hack.cluster.timings import Timings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m hack.cluster", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("up", help="bring the node up (removes an earlier one first)")
    down = sub.add_parser("down", help="stop and remove the node; fails if anything is left behind")
    down.add_argument("--keep-logs", type=Path, help="copy the daemons' logs here first")
    sub.add_parser(
        "controllers", help="install KServe and KEDA (built from their Go modules) into the running node"
    )
    sub.add_parser("status", help="which daemons run, and whether anything of a node is on the machine")
    sub.add_parser("image-tag", help="the Docker tag this checkout's e2e images are built under")
    args = parser.parse_args(argv)
    layout = NodeLayout()

    if args.command == "image-tag":
        print(images.checkout_image_tag(layout.repo))
        return 0

    if args.command == "up":
        print(f"cluster {layout.name}: bringing the node up")
        try:
            timings = node.up(layout)
        except node.ClusterError as exc:
            print(f"error: {exc}", file=sys.stderr)
            print("(the half-built node stays for inspection: `make e2e-down` removes it)", file=sys.stderr)
            return 1
        print(f"cluster {layout.name} up in {timings.total_s:.1f} s")
        print(f"  export KUBECONFIG={layout.admin_kubeconfig}")
        print(f"  kubectl: {layout.bin_dir / 'kubectl'}")
        return 0

    if args.command == "controllers":
        print(f"cluster {layout.name}: installing KServe and KEDA")
        timings = Timings()
        try:
            operators.install(layout, timings)
        except (node.ClusterError, RuntimeError) as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
        print(f"KServe and KEDA ready in {timings.total_s:.1f} s")
        return 0

    if args.command == "down":
        left = teardown.down(layout, keep_logs_in=args.keep_logs)
        if left:
            print("error: left behind:\n  " + "\n  ".join(left), file=sys.stderr)
            return 1
        print(f"cluster {layout.name}: down, nothing left behind")
        return 0

    for daemon in daemons(layout):
        pid = processes.running_pid(layout, daemon.name)
        print(f"  {daemon.name:<26} {'running, pid ' + str(pid) if pid else 'not running'}")
    left = teardown.leftovers(layout)
    print("  on the machine: " + ("; ".join(left) if left else "nothing of a node"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
