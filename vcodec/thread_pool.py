"""One thread pool per process and thread count, for the compiled kernels that release the GIL (the
decoder's picture stages, the training step's kernels): starting threads for every call cost about 1 ms
a layer. A forked child has none of its parent's pool threads, so it starts its pools anew."""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from functools import lru_cache


@lru_cache(maxsize=4)
def shared_pool(threads: int) -> ThreadPoolExecutor:
    return ThreadPoolExecutor(threads, thread_name_prefix="vcodec")


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=shared_pool.cache_clear)
