"""Values to bytes in the store and back: one copy on put, none on get.

    value ──cloudpickle(protocol 5)──► in-band pickle + out-of-band buffers (numpy data)
          ──write_to(store buffer)──► [header | buffer table | in-band | buf0 | buf1 ...]
    store buffer (read-only, pinned) ──deserialize──► value whose arrays view the store

Every pickle buffer (numpy data, of any size) travels out of band, 64-byte aligned, so
numpy arrays come back as zero-copy read-only views that pin the object while alive (as
Ray's do: writing into an array read back fails, whatever its size).

The header's format field says what the in-band part is:

    FORMAT_PICKLE   a pickle (protocol 5) whose out-of-band buffers are the table's
    FORMAT_NDARRAY  one contiguous numpy array, the most common big object: the in-band
                    part describes it (_ARRAY: ndim, order, dtype length; then the shape
                    and the dtype string) and buffer 0 holds its data. Rebuilding it is
                    one ndarray() call on the store buffer, without running the unpickler
                    (whose dtype reconstruction costs ~3 us).
"""

from __future__ import annotations

import collections
import io
import os
import pickle
import struct
import sys
import types

import cloudpickle

from mpiray._native.store import copy_into as _copy_into
from mpiray.core import serialization_context

MAGIC = 0x3159524D  # "MRY1"
FLAG_ERROR = 1
FORMAT_PICKLE = 0
FORMAT_NDARRAY = 1
STREAM_COPY_MIN = 2 << 20  # out-of-band buffers this big are copied by copy_into (streaming stores)
ALIGN = 64
_HEADER = struct.Struct("<IIIIQ")   # magic, flags, n_buffers, format, in-band length
_ENTRY = struct.Struct("<QQ")       # offset, length of one out-of-band buffer
_HSIZE = _HEADER.size
_ARRAY = struct.Struct("<BBH4x")    # FORMAT_NDARRAY: ndim, 1 if Fortran order, dtype length
_PLAIN = frozenset((int, float, str, bytes, bool, type(None), complex))
_ARRAY_KINDS = frozenset("biufcSUV")  # dtypes that .str names whole and buffers export


def _align(n: int) -> int:
    return (n + ALIGN - 1) & ~(ALIGN - 1)


class SerializedObject:
    """A value ready to be written: its in-band part, its raw buffers, the refs inside it."""

    __slots__ = ("inband", "buffers", "contained", "flags", "fmt", "offsets", "total_size")

    def __init__(self, inband: bytes, buffers: list, contained: list, flags: int = 0,
                 fmt: int = FORMAT_PICKLE):
        self.inband, self.buffers, self.contained, self.flags = inband, buffers, contained, flags
        self.fmt = fmt
        pos = _HEADER.size + _ENTRY.size * len(buffers) + len(inband)
        self.offsets = []
        for buf in buffers:
            pos = _align(pos)
            self.offsets.append(pos)
            pos += buf.nbytes
        self.total_size = pos

    def header(self) -> bytes:
        head = _HEADER.pack(MAGIC, self.flags, len(self.buffers), self.fmt, len(self.inband))
        if not self.buffers:
            return head + self.inband
        parts = [head]
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
            if buf.nbytes >= STREAM_COPY_MIN:
                _copy_into(dest, off, buf)  # streaming stores, no GIL (2x memcpy into shm)
            else:
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


class _Inline:
    """A plain scalar, packed at once (a SerializedObject without buffers or refs):
    puts of small values are a hot path."""

    __slots__ = ("data", "flags", "total_size")
    buffers = contained = offsets = ()
    fmt = FORMAT_PICKLE

    def __init__(self, inband: bytes, flags: int):
        self.data = data = _HEADER.pack(MAGIC, flags, 0, FORMAT_PICKLE, len(inband)) + inband
        self.flags, self.total_size = flags, len(data)

    @property
    def inband(self) -> bytes:
        return self.data[_HSIZE:]

    def header(self) -> bytes:
        return self.data

    def to_bytes(self) -> bytes:
        return self.data

    def write_to(self, dest: memoryview) -> None:
        dest[: len(self.data)] = self.data


_warned_not_contiguous = False


def _warn_not_contiguous(array):
    """As Ray, once per process: such an array is pickled whole (a copy) and read back as
    a copy, where a contiguous one is a view of the stored bytes."""
    global _warned_not_contiguous
    if not _warned_not_contiguous:
        _warned_not_contiguous = True
        import warnings

        warnings.warn(f"A non-contiguous numpy array (shape {array.shape}) cannot be zero-copy "
                      f"deserialized: it is copied into the object store and out again "
                      f"(np.ascontiguousarray() makes it contiguous). This warning is shown "
                      f"once per process.", UserWarning, stacklevel=4)


def _array_parts(value):
    """(description, data) of a numpy array that FORMAT_NDARRAY can carry, else None:
    an exact ndarray, C- or Fortran-contiguous, of a dtype its .str names whole. Any size:
    as in Ray, every array read back is a read-only view of the stored bytes."""
    dtype = value.dtype
    if dtype.kind not in _ARRAY_KINDS or dtype.names is not None or dtype.metadata is not None:
        return None
    flags = value.flags
    if flags.c_contiguous:
        fortran = 0
    elif flags.f_contiguous:
        fortran = 1
    else:
        return None
    code = dtype.str.encode()
    desc = _ARRAY.pack(value.ndim, fortran, len(code)) + _shape_struct(value.ndim).pack(*value.shape) + code
    return desc, pickle.PickleBuffer(value).raw()


_shape_structs: dict = {}


def _shape_struct(ndim: int) -> struct.Struct:
    st = _shape_structs.get(ndim)
    if st is None:
        st = _shape_structs[ndim] = struct.Struct(f"<{ndim}q")
    return st


def serialize(value, flags: int = 0) -> SerializedObject:
    t = type(value)
    if t in _PLAIN:
        return _Inline(pickle.dumps(value, protocol=5), flags)
    np = sys.modules.get("numpy")  # no numpy loaded: value is no array (and we never load it)
    if np is not None and t is np.ndarray:
        parts = _array_parts(value)
        if parts is not None:
            return SerializedObject(parts[0], [parts[1]], [], flags, FORMAT_NDARRAY)
        if not (value.flags.c_contiguous or value.flags.f_contiguous):
            _warn_not_contiguous(value)
    buffers = []

    def keep_out_of_band(pb: pickle.PickleBuffer) -> bool:
        buffers.append(pb.raw())   # (any size: arrays read back are read-only, as in Ray)
        return False

    if _is_plain(value) and not _custom_plain:
        inband = pickle.dumps(value, protocol=5, buffer_callback=keep_out_of_band)
        return SerializedObject(inband, buffers, [], flags)
    with serialization_context.collecting() as contained:
        if _custom:
            inband = _dumps_custom(value, keep_out_of_band)
        else:
            inband = cloudpickle.dumps(value, protocol=5, buffer_callback=keep_out_of_band)
    return SerializedObject(inband, buffers, list(dict.fromkeys(contained)), flags)


# ray.util.register_serializer: class -> reducer. The reducer names the deserializer
# function, which cloudpickle sends by value, so any process can rebuild the object.
_custom: dict = {}


def register_serializer(cls, *, serializer, deserializer):
    if not isinstance(cls, type):
        raise TypeError(f"register_serializer needs a class, got {cls!r}")
    if not (callable(serializer) and callable(deserializer)):
        raise TypeError("serializer and deserializer must be callables")
    _custom[cls] = lambda obj: (deserializer, (serializer(obj),))
    _note_plain()


def deregister_serializer(cls):
    _custom.pop(cls, None)
    _note_plain()


_custom_plain = False   # a registered class is one of the plain types (_is_plain)


def _note_plain():
    global _custom_plain
    _custom_plain = any(cls in _PLAIN or cls.__module__ == "numpy" for cls in _custom)


class _CustomPickler(cloudpickle.CloudPickler):
    # (the C pickler reads its dispatch table once, when made: a class attribute that
    # sees later registrations)
    dispatch_table = collections.ChainMap(_custom, cloudpickle.CloudPickler.dispatch_table)


def _code_keeping_its_file(code):
    """cloudpickle's reduction of a code object, with the file it came from kept (the
    cloudpickle here writes "<dynamic-code>"): a task's traceback then names the user's
    file and shows its lines, as Ray's does."""
    rebuild, args = _CODE_REDUCE(code)
    return rebuild, tuple(code.co_filename if a == "<dynamic-code>" else a for a in args)


_CODE_REDUCE = cloudpickle.CloudPickler.dispatch_table[types.CodeType]


class _FunctionPickler(cloudpickle.CloudPickler):
    dispatch_table = collections.ChainMap({types.CodeType: _code_keeping_its_file},
                                          cloudpickle.CloudPickler.dispatch_table)


def dumps_function(fn) -> bytes:
    """A remote function or actor class by value (cloudpickle), keeping its file names. A
    ref it captures is pickled out of band, as Ray counts it (pinned for good, or refused
    under RAY_allow_out_of_band_object_ref_serialization=0)."""
    from mpiray.core.serialization_context import user_pickling

    out = io.BytesIO()
    with user_pickling():
        _FunctionPickler(out, protocol=5).dump(fn)
    return out.getvalue()


FUNCTION_SIZE_WARN_THRESHOLD = 10**7


def check_function_size(blob: bytes, kind: str, name: str) -> None:
    """As Ray's: a pickled function or class of 10 MB warns, one of
    RAY_FUNCTION_SIZE_ERROR_THRESHOLD (100 MB) is refused; such a size is almost always a
    large array captured by the definition by mistake."""
    size = len(blob)
    if size <= FUNCTION_SIZE_WARN_THRESHOLD and "RAY_FUNCTION_SIZE_ERROR_THRESHOLD" not in os.environ:
        return
    limit = int(os.environ.get("RAY_FUNCTION_SIZE_ERROR_THRESHOLD", 10**8))
    mib = 1024 * 1024
    tip = ("Check that its definition is not implicitly capturing a large array or other "
           "object in scope. Tip: use ray.put() to put large objects in the Ray object store.")
    if size >= limit:
        raise ValueError(f"The {kind} {name} is too large ({size // mib} MiB > "
                         f"FUNCTION_SIZE_ERROR_THRESHOLD={limit // mib} MiB). {tip}")
    if size > FUNCTION_SIZE_WARN_THRESHOLD:
        import logging

        logging.getLogger("mpiray").warning(f"The {kind} {name} is very large ({size // mib} MiB). {tip}")


def _dumps_custom(value, buffer_callback):
    out = io.BytesIO()
    _CustomPickler(out, protocol=5, buffer_callback=buffer_callback).dump(value)
    return out.getvalue()


def serialize_error(err: BaseException) -> SerializedObject:
    try:
        return serialize(err, FLAG_ERROR)
    except Exception as exc:  # noqa: BLE001 - it still comes home, as text
        return serialize(picklable_error(err, exc), FLAG_ERROR)


def picklable_error(err: BaseException, why: Exception):
    """err, whose cause could not be pickled (it holds a lock, say), as Ray sends it: the
    same RayTaskError text, its cause a RayError saying so."""
    from mpiray.exceptions import RayError, RayTaskError

    cause = getattr(err, "cause", err)
    note = RayError(f"The original cause of the RayTaskError ({type(cause)}) isn't "
                    f"serializable: {why}. Overwriting the cause to a RayError.")
    if not isinstance(err, RayTaskError):
        return RayTaskError("<unknown>", f"{type(err).__name__}: {err}", note)
    return RayTaskError(err.function_name, err.traceback_str, note, err.proctitle, err.pid,
                        err.ip, err.actor_repr, err.actor_id)


def is_error(buf) -> bool:
    return _HEADER.unpack_from(buf)[1] & FLAG_ERROR != 0


def deserialize(buf):
    """buf: a bytes-like holding one serialized object. Returns (value, is_error)."""
    magic, flags, n_buffers, fmt, inband_len = _HEADER.unpack_from(buf)
    if magic != MAGIC:
        raise ValueError("not an mpiray object (bad magic): the store or a message is corrupt")
    if fmt == FORMAT_NDARRAY:  # (inline: this is the hot path of a big get)
        key = bytes(buf[_HSIZE : _DESC + inband_len])
        layout = _layouts.get(key) or _new_layout(key)
        return _ndarray(layout[0], layout[1], buf, layout[2], None, layout[3]), flags & FLAG_ERROR != 0
    if fmt != FORMAT_PICKLE:
        raise ValueError(f"unknown object format {fmt}: the store or a message is corrupt")
    if not n_buffers:  # (a bytes buf is sliced by copy: only small pickles come as bytes)
        if flags & FLAG_ERROR:
            return _load_error(buf[_HSIZE : _HSIZE + inband_len]), True
        return pickle.loads(buf[_HSIZE : _HSIZE + inband_len]), False
    mv = memoryview(buf)
    pos = _HSIZE
    oob = []
    for _ in range(n_buffers):
        off, length = _ENTRY.unpack_from(mv, pos)
        oob.append(mv[off : off + length])
        pos += _ENTRY.size
    if flags & FLAG_ERROR:
        return _load_error(mv[pos : pos + inband_len], oob), True
    return pickle.loads(mv[pos : pos + inband_len], buffers=oob), False


def _load_error(data, buffers=()):
    """An error object; one whose class cannot be rebuilt here (an __init__ that wants
    other arguments than its args, say) becomes an UnserializableException (a
    RaySystemError) saying so, as in Ray."""
    try:
        return pickle.loads(data, buffers=buffers)
    except Exception as exc:  # noqa: BLE001
        from mpiray.exceptions import UnserializableException

        return UnserializableException(f"{type(exc).__name__}: {exc}")


# FORMAT_NDARRAY: arrays of one shape and dtype have the same buffer entry and description
# bytes, so what deserialize needs from them is cached by those bytes: a pure function of
# them (shape, dtype, data offset, order), never a value.
_DESC = _HSIZE + _ENTRY.size         # where the description starts
_layouts: dict = {}                  # entry + description bytes -> ndarray() arguments
_ndarray = None


def _new_layout(key: bytes):
    global _ndarray
    import numpy

    _ndarray = numpy.ndarray
    off, _ = _ENTRY.unpack_from(key)
    ndim, fortran, code_len = _ARRAY.unpack_from(key, _ENTRY.size)
    pos = _ENTRY.size + _ARRAY.size
    shape = _shape_struct(ndim).unpack_from(key, pos)
    code = key[pos + 8 * ndim : pos + 8 * ndim + code_len].decode()
    layout = shape, numpy.dtype(code), off, "F" if fortran else "C"
    if len(_layouts) >= 256:
        _layouts.clear()
    _layouts[key] = layout
    return layout


def reworded(exc: Exception) -> bool:
    """Whether Ray rewords this pickling error (else it reaches the caller unchanged)."""
    from mpiray.exceptions import OufOfBandObjectRefSerializationException

    return isinstance(exc, (TypeError, OufOfBandObjectRefSerializationException))


def raise_unpicklable(what: str, obj, exc: Exception):
    """Raises unpicklable()'s error from exc (exc itself, when it is not reworded)."""
    raise_reworded(unpicklable(what, obj, exc), exc)


def raise_reworded(err: Exception, exc: Exception):
    """Raises err from exc, or exc itself when err is exc (an error Ray does not reword)."""
    if err is exc:
        raise exc
    raise err from exc


def unpicklable(what: str, obj, exc: Exception) -> Exception:
    """Ray's error for something a task, actor or put needs that does not pickle: what,
    then inspect_serializability's report on obj (which part of it does not). As Ray's,
    only a TypeError (and a refused out-of-band ref) is reworded; any other error a
    __reduce__ raised is the caller's to see as it is: exc itself."""
    import io

    from mpiray.exceptions import OufOfBandObjectRefSerializationException
    from mpiray.util.check_serialize import inspect_serializability

    if not reworded(exc):
        return exc
    kind = type(exc) if isinstance(exc, OufOfBandObjectRefSerializationException) else TypeError
    report = io.StringIO()
    try:
        inspect_serializability(obj, print_file=report)
    except Exception:  # noqa: BLE001 - the report is a help; the error must come anyway
        return kind(f"Could not serialize {what}: {exc}")
    return kind(f"Could not serialize {what}:\n{report.getvalue()}")
