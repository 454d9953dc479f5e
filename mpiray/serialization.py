"""Values to bytes in the store and back: one copy on put, none on get.

    value ──cloudpickle(protocol 5)──► in-band pickle + out-of-band buffers (numpy data)
          ──write_to(store buffer)──► [header | buffer table | pickle | buf0 | buf1 ...]
    store buffer (read-only, pinned) ──deserialize──► value whose arrays view the store

Buffers of at least OOB_THRESHOLD bytes travel out of band, each 64-byte aligned, so
numpy arrays come back as zero-copy read-only views that pin the object while alive.
"""

from __future__ import annotations

import pickle
import struct

import cloudpickle

from mpiray.core import serialization_context

MAGIC = 0x3159524D  # "MRY1"
FLAG_ERROR = 1
OOB_THRESHOLD = 4096
ALIGN = 64
_HEADER = struct.Struct("<IIIIQ")   # magic, flags, n_buffers, reserved, in-band length
_ENTRY = struct.Struct("<QQ")       # offset, length of one out-of-band buffer
_PLAIN = frozenset((int, float, str, bytes, bool, type(None), complex))


def _align(n: int) -> int:
    return (n + ALIGN - 1) & ~(ALIGN - 1)


class SerializedObject:
    """A value ready to be written: its pickle, its raw buffers, the refs inside it."""

    __slots__ = ("inband", "buffers", "contained", "flags", "offsets", "total_size")

    def __init__(self, inband: bytes, buffers: list, contained: list, flags: int = 0):
        self.inband, self.buffers, self.contained, self.flags = inband, buffers, contained, flags
        pos = _HEADER.size + _ENTRY.size * len(buffers) + len(inband)
        self.offsets = []
        for buf in buffers:
            pos = _align(pos)
            self.offsets.append(pos)
            pos += buf.nbytes
        self.total_size = pos

    def header(self) -> bytes:
        parts = [_HEADER.pack(MAGIC, self.flags, len(self.buffers), 0, len(self.inband))]
        parts += [_ENTRY.pack(off, buf.nbytes) for off, buf in zip(self.offsets, self.buffers)]
        parts.append(self.inband)
        return b"".join(parts)

    def to_bytes(self) -> bytes:
        """The whole object as one bytes (for small objects and inline arguments)."""
        if not self.buffers:
            return self.header()
        out = bytearray(self.total_size)
        self.write_to(memoryview(out))
        return bytes(out)

    def write_to(self, dest: memoryview) -> None:
        head = self.header()
        dest[: len(head)] = head
        for off, buf in zip(self.offsets, self.buffers):
            dest[off : off + buf.nbytes] = buf


def _is_plain(value, depth: int = 3) -> bool:
    """True for data the stdlib pickler writes without naming any user code: scalars,
    numpy arrays of plain dtypes, and small containers of those. Such values skip
    cloudpickle (5-10x slower) and can hold no ObjectRef."""
    t = type(value)
    if t in _PLAIN:
        return True
    if depth == 0:
        return False
    if t is tuple or t is list:
        if len(value) > 64:
            return False
        for v in value:
            if type(v) not in _PLAIN and not _is_plain(v, depth - 1):
                return False
        return True
    if t is dict:
        if len(value) > 64:
            return False
        for k, v in value.items():
            if type(k) not in _PLAIN or (type(v) not in _PLAIN and not _is_plain(v, depth - 1)):
                return False
        return True
    if t.__module__ == "numpy":
        dtype = getattr(value, "dtype", None)
        return dtype is not None and not dtype.hasobject and dtype.names is None
    return False


def serialize(value, flags: int = 0) -> SerializedObject:
    if type(value) in _PLAIN:
        return SerializedObject(pickle.dumps(value, protocol=5), [], [], flags)
    buffers = []

    def keep_out_of_band(pb: pickle.PickleBuffer) -> bool:
        raw = pb.raw()
        if raw.nbytes < OOB_THRESHOLD:
            return True  # small: cheaper in the pickle stream
        buffers.append(raw)
        return False

    if _is_plain(value):
        inband = pickle.dumps(value, protocol=5, buffer_callback=keep_out_of_band)
        return SerializedObject(inband, buffers, [], flags)
    with serialization_context.collecting() as contained:
        inband = cloudpickle.dumps(value, protocol=5, buffer_callback=keep_out_of_band)
    return SerializedObject(inband, buffers, list(dict.fromkeys(contained)), flags)


def serialize_error(err: BaseException) -> SerializedObject:
    try:
        return serialize(err, FLAG_ERROR)
    except Exception as exc:  # an exception that cannot be pickled still comes home as text
        from mpiray.exceptions import RayTaskError

        fallback = RayTaskError(getattr(err, "function_name", "<unknown>"),
                                f"{err!r} (could not be pickled: {exc})", None)
        return serialize(fallback, FLAG_ERROR)


def is_error(buf) -> bool:
    return _HEADER.unpack_from(buf)[1] & FLAG_ERROR != 0


def deserialize(buf):
    """buf: a bytes-like holding one serialized object. Returns (value, is_error)."""
    magic, flags, n_buffers, _, inband_len = _HEADER.unpack_from(buf)
    if magic != MAGIC:
        raise ValueError("not an mpiray object (bad magic): the store or a message is corrupt")
    mv = memoryview(buf)
    pos = _HEADER.size
    oob = []
    for _ in range(n_buffers):
        off, length = _ENTRY.unpack_from(mv, pos)
        oob.append(mv[off : off + length])
        pos += _ENTRY.size
    value = pickle.loads(mv[pos : pos + inband_len], buffers=oob)
    return value, bool(flags & FLAG_ERROR)
