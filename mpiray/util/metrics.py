"""ray.util.metrics: application metrics (Counter, Gauge, Histogram), as Ray's API.

    metric.inc / set / observe(value, tags) ──► this process's registry
        ──► Metric.values() (read in the process that records)
        ──► MPIRAY_METRICS_DIR set: <dir>/mpiray-<host>-<pid>.prom, Prometheus' text
            format, rewritten at most once a second and at exit (what node_exporter's
            textfile collector, or any scraper of files, reads)

Ray sends these to its metrics agent for Prometheus; mpiray has no agent process, so
each process writes its own file.
"""

from __future__ import annotations

import atexit
import os
import re
import socket
import threading
import time

_NAME = re.compile(r"^[a-zA-Z_:][a-zA-Z0-9_:]*$")
WRITE_EVERY_S = 1.0

_lock = threading.Lock()
_write_lock = threading.Lock()
_registry = {}            # name -> the first metric of that name made in this process
_last_write = 0.0
_pending = None           # the timer that writes updates made since the last write


class Metric:
    _kind = "untyped"

    def __init__(self, name: str, description: str = "", tag_keys=None):
        if not isinstance(name, str) or not name:
            raise ValueError("Empty name is not allowed. Please provide a metric name.")
        # (as Ray's: a name Prometheus would refuse is warned about, and the metric records
        # nothing, rather than failing the job)
        self._discarded = not _NAME.match(name)
        if self._discarded:
            import warnings

            warnings.warn(f"Invalid metric name: {name}. Metric will be discarded and data will "
                          f"not be collected or published. Metric names must match "
                          f"{_NAME.pattern}.", UserWarning, stacklevel=3)
        if tag_keys is None:
            tag_keys = ()
        if not isinstance(tag_keys, tuple):
            raise TypeError(f"tag_keys should be a tuple type, got: {type(tag_keys)}")
        for key in tag_keys:
            if not isinstance(key, str):
                raise TypeError(f"Tag keys must be str, got {type(key)}.")
        self._name, self._description, self._tag_keys = name, description, tag_keys
        self._default_tags = {}
        if self._discarded:
            self._values = {}
            return
        with _lock:
            first = _registry.get(name)
            if first is None:
                _registry[name] = self
                self._values = {}   # tag values (in tag_keys' order) -> value
            elif type(first) is not type(self) or first._tag_keys != tag_keys or \
                    getattr(first, "boundaries", None) != getattr(self, "boundaries", None):
                raise ValueError(f"a metric named {name!r} exists already as a "
                                 f"{type(first).__name__} with tag_keys {first._tag_keys}")
            else:   # (one made per call, as Ray's examples do: the values add up)
                self._values = first._values

    def set_default_tags(self, default_tags: dict):
        for key, value in default_tags.items():
            if key not in self._tag_keys:
                raise ValueError(f"Unrecognized tag key {key!r}.")
            if not isinstance(value, str):
                raise TypeError(f"Tag values must be str, got {type(value)}.")
        self._default_tags = dict(default_tags)
        return self

    @property
    def info(self) -> dict:
        return {"name": self._name, "description": self._description,
                "tag_keys": self._tag_keys, "default_tags": self._default_tags}

    def values(self) -> dict:
        """{tags as a tuple of (key, value): value} recorded in this process."""
        with _lock:
            return {tuple(zip(self._tag_keys, k)): _copy(v) for k, v in self._values.items()}

    def _key(self, tags):
        merged = dict(self._default_tags)
        if tags:
            for key, value in tags.items():
                if key not in self._tag_keys:
                    raise ValueError(f"Unrecognized tag key {key!r}.")
                if not isinstance(value, str):
                    raise TypeError(f"Tag values must be str, got {type(value)}.")
            merged.update(tags)
        missing = [k for k in self._tag_keys if k not in merged]
        if missing:
            raise ValueError(f"Missing value for tag key(s): {', '.join(missing)}.")
        return tuple(merged[k] for k in self._tag_keys)

    def _record(self, tags, update):
        if self._discarded:
            return
        key = self._key(tags)
        with _lock:
            self._values[key] = update(self._values.get(key))
        _maybe_write()


def _copy(v):
    return list(v) if isinstance(v, list) else v


def _number(value, what):
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{what} must be a number, got {type(value).__name__}")
    return float(value)


class Counter(Metric):
    """A count that only grows."""
    _kind = "counter"

    def inc(self, value: float = 1.0, tags: dict = None):
        value = _number(value, "value")
        if value <= 0:
            raise ValueError(f"value must be > 0, got {value}")
        self._record(tags, lambda old: (old or 0.0) + value)


class Gauge(Metric):
    """The last value set."""
    _kind = "gauge"

    def set(self, value: float, tags: dict = None):
        if value is None:
            return
        value = _number(value, "value")
        self._record(tags, lambda old: value)


class Histogram(Metric):
    """Observations counted in buckets (upper bounds `boundaries`), with their sum."""
    _kind = "histogram"

    def __init__(self, name: str, description: str = "", boundaries=None, tag_keys=None):
        if not boundaries:
            raise ValueError("boundaries must be a non-empty list of numbers")
        bounds = [_number(b, "a boundary") for b in boundaries]
        if any(b <= 0 for b in bounds) or bounds != sorted(bounds):
            raise ValueError(f"boundaries must be positive and increasing, got {boundaries}")
        self.boundaries = bounds
        super().__init__(name, description, tag_keys)

    @property
    def info(self) -> dict:
        return dict(super().info, boundaries=self.boundaries)

    def observe(self, value: float, tags: dict = None):
        value = _number(value, "value")
        n = len(self.boundaries)

        def add(old):
            counts = old or [0.0] * (n + 2)   # buckets..., +Inf bucket, sum
            i = next((j for j, b in enumerate(self.boundaries) if value <= b), n)
            counts[i] += 1
            counts[-1] += value
            return counts

        self._record(tags, add)


# ------------------------------------------------------------ the text file
def prometheus_text() -> str:
    """Every metric of this process in Prometheus' text format, named as Ray exports them:
    "ray_" first, "_total" after a counter's name, and Ray's Component and Version labels
    on every sample (dashboards and queries written for Ray's match)."""
    from mpiray import __version__

    lines, common = [], {"Component": "core_worker", "Version": __version__}
    with _lock:
        for m in _registry.values():
            name = f"ray_{m._name}"
            lines.append(f"# HELP {name} {m._description}".rstrip())
            lines.append(f"# TYPE {name} {m._kind}")
            for key, value in m._values.items():
                labels = dict(common, **dict(zip(m._tag_keys, key)))
                if isinstance(value, list):
                    total = 0.0
                    for bound, count in zip(m.boundaries + [float("inf")], value[:-1]):
                        total += count
                        le = "+Inf" if bound == float("inf") else repr(bound)
                        lines.append(f"{name}_bucket{_labels(labels, le=le)} {total}")
                    lines.append(f"{name}_count{_labels(labels)} {total}")
                    lines.append(f"{name}_sum{_labels(labels)} {value[-1]}")
                else:
                    suffix = "_total" if m._kind == "counter" else ""
                    lines.append(f"{name}{suffix}{_labels(labels)} {value}")
    return "\n".join(lines) + "\n"


def _labels(labels, **extra):
    labels = dict(labels, **extra)
    if not labels:
        return ""
    body = ",".join(f'{k}="{_escape(v)}"' for k, v in labels.items())
    return "{" + body + "}"


def _escape(v):
    return str(v).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _maybe_write(force=False):
    """Writes the file now, or, within WRITE_EVERY_S of the last write, once that is over
    (a timer): an update is never left unwritten while the process lives."""
    global _last_write, _pending
    directory = os.environ.get("MPIRAY_METRICS_DIR")
    if not directory:
        return
    now = time.monotonic()
    if not force and now - _last_write < WRITE_EVERY_S:
        with _lock:
            if _pending is None:
                _pending = threading.Timer(_last_write + WRITE_EVERY_S - now, _write_pending)
                _pending.daemon = True
                _pending.start()
        return
    _last_write = now
    path = os.path.join(directory, f"mpiray-{socket.gethostname()}-{os.getpid()}.prom")
    os.makedirs(directory, exist_ok=True)
    tmp = path + ".tmp"
    with _write_lock:
        with open(tmp, "w") as f:
            f.write(prometheus_text())
        os.replace(tmp, path)   # (a scraper never reads half a file)


def _write_pending():
    global _pending
    with _lock:
        _pending = None
    try:
        _maybe_write(force=True)
    except OSError:
        pass   # (the directory went: the next update tries again)


@atexit.register
def _write_at_exit():
    if _registry:
        try:
            _maybe_write(force=True)
        except OSError:
            pass


__all__ = ["Counter", "Gauge", "Histogram", "Metric", "prometheus_text"]
