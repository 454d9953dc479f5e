"""ray.LoggingConfig: how Ray formats its processes' logs. Checked and kept: mpiray's
workers print to the driver as they are (docs/api.md), with no log files to format."""

from __future__ import annotations

from dataclasses import dataclass, field

_ENCODINGS = ("TEXT", "JSON")
_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
# The attributes every logging.LogRecord has (what additional_log_standard_attrs may name).
LOGRECORD_STANDARD_ATTRS = frozenset((
    "args", "created", "exc_info", "exc_text", "filename", "funcName", "levelname", "levelno",
    "lineno", "module", "msecs", "message", "msg", "name", "pathname", "process",
    "processName", "relativeCreated", "stack_info", "taskName", "thread", "threadName"))


@dataclass
class LoggingConfig:
    encoding: str = "TEXT"
    log_level: str = "INFO"
    additional_log_standard_attrs: list = field(default_factory=list)

    def __post_init__(self):
        if self.encoding not in _ENCODINGS:
            raise ValueError(f"Invalid encoding type: {self.encoding}. Valid encoding types "
                             f"are: {list(_ENCODINGS)}")
        if not isinstance(self.log_level, str) or self.log_level.upper() not in _LEVELS:
            raise ValueError(f"Invalid log level: {self.log_level!r}; one of {list(_LEVELS)}")
        if not isinstance(self.additional_log_standard_attrs, list):
            raise TypeError("additional_log_standard_attrs must be a list of LogRecord "
                            "attribute names")
        for attr in self.additional_log_standard_attrs:
            if attr not in LOGRECORD_STANDARD_ATTRS:
                raise ValueError(f"Unknown python logging standard attribute: {attr}. The valid "
                                 f"attributes are: {sorted(LOGRECORD_STANDARD_ATTRS)}")
