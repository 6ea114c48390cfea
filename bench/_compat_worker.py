"""``python -m bench._compat_worker worker ...``: exactly ``python -m streams worker``, except that it first
repairs ``infra.settings.Settings.topic`` when it is a @property that takes a name (a TypeError in
``streams.create_app``). Used by the benchmark only while that bug is present; remove when fixed."""

from __future__ import annotations

import inspect
import sys

from infra.settings import Settings


def _topic(self: Settings, name: str) -> str:
    return f"{name}{self.topic_suffix}"


if isinstance(inspect.getattr_static(Settings, "topic"), property):
    Settings.topic = _topic  # type: ignore[method-assign,assignment]

from streams.worker import main  # noqa: E402

sys.exit(main(sys.argv[1:]))
