"""Flink configuration pass-through: the job config's ``flink:`` mapping and ``-D key=value``.

Both are handed to Flink's ``Configuration`` unchanged (after flinkdl's own settings, so they win);
``-D`` wins over ``flink:``. Values are written as Flink reads them: ``true``/``false`` for booleans.

>>> merged({"parallelism.default": 2, "pipeline.object-reuse": True}, ["parallelism.default=4"])
{'parallelism.default': '4', 'pipeline.object-reuse': 'true'}
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from pydantic import StrictBool, StrictFloat, StrictInt, StrictStr

#: The ``flink:`` section: Flink option keys (``taskmanager.memory.process.size``) → values.
FlinkOptions = dict[str, StrictStr | StrictBool | StrictInt | StrictFloat]


def flink_value(value: object) -> str:
    """A config value as Flink's string form."""
    return str(value).lower() if isinstance(value, bool) else str(value)


def dynamic_property(item: str) -> str:
    """Check one ``-D key=value`` (argparse ``type``); returns it unchanged."""
    key, sep, _ = item.partition("=")
    if not sep or not key.strip():
        raise ValueError(f"-D wants key=value, got {item!r}")
    return item


def merged(options: Mapping[str, object], dynamic: Sequence[str] = ()) -> dict[str, str]:
    """``flink:`` then ``-D key=value`` (later wins), as strings."""
    out = {k: flink_value(v) for k, v in options.items()}
    for item in dynamic:
        key, _, value = dynamic_property(item).partition("=")
        out[key.strip()] = value
    return out
