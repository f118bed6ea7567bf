"""Keep serving processes lean: they never need scikit-learn, which xgboost imports when it is installed,
the pages the C heap has freed go back to the system, and the garbage collector does not walk what the
process set up at start again and again."""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
import sys
from collections.abc import Callable


def _glibc_malloc_trim() -> Callable[[int], int] | None:
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        return libc.malloc_trim
    except (OSError, AttributeError):  # not glibc (musl, macOS): nothing to trim this way
        return None


_MALLOC_TRIM = _glibc_malloc_trim()


def return_freed_memory() -> None:
    """Give the C heap's free pages back to the system (glibc's `malloc_trim`; elsewhere nothing).

    glibc keeps freed memory in its heap for reuse, and only from the top: a batch's temporaries (NumPy
    arrays of a few MB, which glibc's adaptive threshold moves from mmap into the heap, and the state rows
    of a checkpoint) leave their pages resident between live objects. Measured in the stream consumer's
    drain with the entity table: ~150-210 MB of a 370 MB heap free but resident. A trim costs a walk over
    the heap: call it every few seconds, not per batch."""
    if _MALLOC_TRIM is not None:
        _MALLOC_TRIM(0)


def without_training_libraries() -> None:
    """Make `import sklearn` fail in this process (xgboost then skips its sklearn wrappers).

    Saves ~150 MB of resident memory in each consumer, gateway and predictor process (measured:
    `import xgboost` costs 230 MB with scikit-learn importable, 77 MB without). Call it before
    anything imports xgboost; a process that already imported scikit-learn is left alone.
    """
    if "sklearn" not in sys.modules:
        sys.modules["sklearn"] = None  # type: ignore[assignment]


#: net new container objects between two young-generation collections (Python's default: 700). A batch of
#: 5,000 records holds ~30,000 (a decoded struct, a dict, lists): at 700, the collector ran ~60 times a
#: batch, and each tenth of those promoted the batch's live objects to be walked again.
YOUNG_COLLECTION_THRESHOLD = 50_000


def settle_garbage_collection() -> None:
    """For a process that runs one long loop over batches, called by its entry point once its modules are
    imported (a process-wide setting: never from a loop that may run inside another program, a test's
    thread say): move every object alive now out of the collector's sight for good (`gc.freeze`: they
    live as long as the process), and collect the young generation only every YOUNG_COLLECTION_THRESHOLD
    objects.

    Measured in the entity drain: the stream consumer spent 7.1 s of its 41 CPU-s in the collector
    (17 full collections of ~250,000 objects at ~230 ms each, 3,500 young ones); the entity-state
    component 4.9 s of 24. A batch's objects are freed by reference counting when it is done; the
    collector is only there for cycles, which it still finds, less often."""
    gc.collect()
    gc.freeze()
    _, middle, old = gc.get_threshold()
    gc.set_threshold(YOUNG_COLLECTION_THRESHOLD, middle, old)
