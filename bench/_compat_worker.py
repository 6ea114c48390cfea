"""``python -m bench._compat_worker worker ...``: ``python -m streams worker`` after bench.compat.apply()
(used only while bench.compat.defects() finds something; see that module)."""

from __future__ import annotations

import os
import sys

from bench.compat import apply

repaired = apply(os.environ.get("ALLIANCE_TOPIC_SUFFIX", ""))
print(f"[bench] compat: repaired {', '.join(repaired) or 'nothing'}", file=sys.stderr, flush=True)

from streams.worker import main  # noqa: E402

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
