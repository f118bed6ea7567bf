"""The garbage collector settled for a batch loop: start-up objects frozen, young collections rare, cycles
still collected. Each check runs in a process of its own (freezing is for the rest of a process' life)."""

from __future__ import annotations

import subprocess
import sys

from fraudops.lean import YOUNG_COLLECTION_THRESHOLD

SETTLED = """
import gc, weakref
from fraudops.lean import settle_garbage_collection

alive_at_start = [[n] for n in range(10_000)]
settle_garbage_collection()
frozen = gc.get_freeze_count()
tracked = len(gc.get_objects())

class Node:
    pass

young = gc.get_count()[0]
for _ in range(5_000):  # batch-like churn freed by reference counting: no collection runs
    batch = [{"id": n} for n in range(5)]
assert gc.get_count()[0] - young < 100, gc.get_count()

a, b = Node(), Node()
a.other, b.other = b, a  # a cycle: reference counting never frees it
gone = weakref.ref(a)
del a, b
gc.collect()
print(frozen, tracked, gc.get_threshold()[0], gone() is None)
"""


def test_settling_freezes_what_start_up_left_and_still_collects_cycles() -> None:
    out = subprocess.run([sys.executable, "-c", SETTLED], capture_output=True, text=True, check=True).stdout
    frozen, tracked, threshold, cycle_collected = out.split()
    assert int(frozen) >= 10_000  # the start-up objects, out of the collector's sight
    assert int(tracked) < 1_000  # what it still walks is what came after
    assert int(threshold) == YOUNG_COLLECTION_THRESHOLD
    assert cycle_collected == "True"
