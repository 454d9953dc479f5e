"""Ray's log deduplication on the driver: a line that several worker processes print
alike within a few seconds is printed once, then once more with how many times it came.

    worker line "(name pid=N) text" ──► key: text without its words holding digits
        first time ─────────────────────────► printed at once
        again, from the same process ───────► printed (a process's own lines are kept)
        again, from another process ────────► counted, not printed
    every window (RAY_DEDUP_LOGS_AGG_WINDOW_S, 5 s): a key counted more than once ──►
        "<its last line> [repeated Nx across cluster]"; counted once ──► that line

RAY_DEDUP_LOGS=0 turns it off; lines matching RAY_DEDUP_LOGS_ALLOW_REGEX are never
deduplicated, those matching RAY_DEDUP_LOGS_SKIP_REGEX never printed. Lines that no
worker prefix starts (the zygote's own) pass as they are, and so do the lines of an
error's report (Ray's come from the driver's own process, undeduplicated).
"""

from __future__ import annotations

import os
import re
import time

# (who may hold parentheses: an actor's __repr__, "Model(size=3)")
PREFIX = re.compile(r"^(?:\x1b\[[0-9;]*m)*\((?P<who>.*?) pid=(?P<pid>\d+)\)(?:\x1b\[0m)? ")
_DIGITS = re.compile(r"[0-9]")
# Never deduplicated: what belongs to an error's report (its traceback's indented lines,
# the exception's own line, an "Unhandled error" report): each must be read whole.
_ERROR_PART = re.compile(r"^\s|Traceback|Error|Exception|Unhandled")
# Ray's hint, after the first count it prints
HINT = (" (Ray deduplicates logs by default. Set RAY_DEDUP_LOGS=0 to disable log deduplication, "
        "or see https://docs.ray.io/en/master/ray-observability/user-guides/configure-logging.html"
        "#log-deduplication for more options.)")


def enabled() -> bool:
    return os.environ.get("RAY_DEDUP_LOGS", "1") not in ("0", "false", "False")


class LogDeduplicator:
    def __init__(self, window_s=None, allow=None, skip=None):
        self.window_s = float(os.environ.get("RAY_DEDUP_LOGS_AGG_WINDOW_S", "5")) \
            if window_s is None else window_s
        allow = os.environ.get("RAY_DEDUP_LOGS_ALLOW_REGEX") if allow is None else allow
        skip = os.environ.get("RAY_DEDUP_LOGS_SKIP_REGEX") if skip is None else skip
        self.allow = re.compile(allow) if allow else None
        self.skip = re.compile(skip) if skip else None
        self.recent = {}        # key -> [since, count, last line, sources]
        self.tipped = False

    def feed(self, line: str, now: float) -> list:
        """The lines to print now for this one (without its newline)."""
        if self.skip is not None and self.skip.search(line):
            return []
        found = PREFIX.match(line)
        if found is None or (self.allow is not None and self.allow.search(line)):
            return [line]
        text = line[found.end():]
        if _ERROR_PART.search(text):
            return [line]
        key = " ".join(w for w in text.split() if not _DIGITS.search(w))
        if not key:
            return [line]
        source = found.group("pid")
        state = self.recent.get(key)
        if state is None:
            self.recent[key] = [now, 0, line, {source}]
            return [line]
        state[3].add(source)
        if len(state[3]) == 1:
            return [line]   # (only this process printed it so far: its own lines all show)
        state[1] += 1
        state[2] = line
        return []

    def due(self, now: float, everything=False) -> list:
        """The counts whose window is over (all of them: everything), as lines."""
        out = []
        for key in list(self.recent):
            since, count, line, sources = self.recent[key]
            if not everything and now - since < self.window_s:
                continue
            if count > 1:
                out.append(f"{line} [repeated {count}x across cluster]" + ("" if self.tipped else HINT))
                self.tipped = True
                if everything:
                    del self.recent[key]
                else:
                    self.recent[key] = [now, 0, line, sources]   # (counting on, afresh)
            else:
                if count == 1:
                    out.append(line)
                del self.recent[key]
        return out

    def pending(self) -> bool:
        return bool(self.recent)


class LogLines:
    """One output stream of the node (stdout or stderr): whole lines in, through the
    deduplicator, text to print out."""

    def __init__(self, stream: str):
        self.stream = stream
        self.dedup = LogDeduplicator() if enabled() else None

    def feed_lines(self, lines: list) -> str:
        """Whole lines (without their newlines), from one source that splits its own."""
        if not lines:
            return ""
        if self.dedup is None:
            return "".join(line + "\n" for line in lines)
        now = time.monotonic()
        out = [shown + "\n" for line in lines for shown in self.dedup.feed(line, now)]
        out += [shown + "\n" for shown in self.dedup.due(now)]
        return "".join(out)

    def pending(self) -> bool:
        return self.dedup is not None and self.dedup.pending()

    def due(self) -> str:
        return "".join(line + "\n" for line in self.dedup.due(time.monotonic()))

    def close(self) -> str:
        """What is still counted, at the end (the node stops)."""
        if self.dedup is None:
            return ""
        return "".join(line + "\n" for line in self.dedup.due(time.monotonic(), everything=True))
