"""``python -m bench.profiled_worker worker ...``: ``python -m streams worker`` under cProfile; the stats are
written to $BENCH_PROFILE_OUT when the worker exits (SIGTERM -> graceful stop)."""

from __future__ import annotations

import os
import sys

from streams.worker import main

profile_out = os.environ.get("BENCH_PROFILE_OUT")
if profile_out:  # profile the whole worker; stats written when it exits (SIGTERM -> graceful stop)
    import cProfile

    profiler = cProfile.Profile()
    profiler.enable()
    try:
        code = main(sys.argv[1:])
    finally:
        profiler.disable()
        profiler.dump_stats(profile_out)
    sys.exit(code)
sys.exit(main(sys.argv[1:]))
