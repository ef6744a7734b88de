# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""
An ordered thread-pool map with bounded lookahead.

Reading and normalizing files (I/O, NumPy, zlib) release the GIL, and so
does a TensorFlow forward pass: `prefetch_map` lets the reading of the
next images overlap the forward pass of the current batch, for the
bottleneck cache, for `~astroclusterclf.ClusterClassifier.predict` and
for catalog annotation alike.

Examples
--------
>>> from astroclusterclf._parallel import prefetch_map
>>> [(item, result, error) for item, result, error
...  in prefetch_map(lambda x: 10 // x, [1, 2, 5])]
[(1, 10, None), (2, 5, None), (5, 2, None)]
>>> item, result, error = list(prefetch_map(lambda x: 10 // x, [0]))[0]
>>> type(error).__name__
'ZeroDivisionError'
"""

import collections
import concurrent.futures
import os

__all__ = ['prefetch_map']


def prefetch_map(func, items, *, workers=None, lookahead=None):
    """Apply ``func`` to ``items`` in a thread pool, yielding in order.

    At most ``lookahead`` calls are in flight, so memory stays bounded
    while the caller (e.g. a forward pass, which releases the GIL) works
    on earlier results.

    Parameters
    ----------
    func : callable
        Called as ``func(item)`` in a worker thread.
    items : iterable
        Consumed lazily, ``lookahead`` items ahead of the caller.
    workers : int, optional
        Threads (default: the number of CPUs, at most 4).
    lookahead : int, optional
        Calls in flight at most (default: ``4 * workers``).

    Yields
    ------
    item, result, error
        ``error`` is the exception ``func(item)`` raised (then ``result``
        is `None`); exceptions are not raised here so the caller decides.
    """
    workers = workers or min(4, os.cpu_count() or 1)
    lookahead = lookahead or 4 * workers
    items = iter(items)
    pending = collections.deque()
    with concurrent.futures.ThreadPoolExecutor(workers) as pool:
        def fill():
            while len(pending) < lookahead:
                try:
                    item = next(items)
                except StopIteration:
                    return
                pending.append((item, pool.submit(func, item)))
        fill()
        try:
            while pending:
                item, future = pending.popleft()
                fill()
                try:
                    yield item, future.result(), None
                except Exception as exc:  # handed to the caller
                    yield item, None, exc
        finally:
            for _, future in pending:
                future.cancel()
