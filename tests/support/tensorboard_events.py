"""Read tensorboardX event files in tests, without TensorFlow."""

from __future__ import annotations

import struct
from pathlib import Path


def read_events(logdir: Path) -> dict[str, list[tuple[int, float]]]:
    """``tag -> [(step, simple_value), ...]`` of every summary value (scalars and images;
    images have value 0) in the event files under ``logdir`` (TFRecord framing)."""
    from tensorboardX.proto import event_pb2

    out: dict[str, list[tuple[int, float]]] = {}
    for path in sorted(logdir.glob("events.out.tfevents.*")):
        data = path.read_bytes()
        pos = 0
        while pos + 12 <= len(data):
            (n,) = struct.unpack("<Q", data[pos : pos + 8])
            event = event_pb2.Event.FromString(data[pos + 12 : pos + 12 + n])
            pos += 12 + n + 4
            for v in event.summary.value:
                out.setdefault(v.tag, []).append((event.step, v.simple_value))
    return out
