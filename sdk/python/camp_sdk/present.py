"""Reader of what ``camp-client --present`` hands a renderer.

The record stream (``--present stdout`` or ``--present unix:PATH``, docs/wire-format.md
section 8) is an 8-byte preamble ``b"CPRS" 01 00 00 00`` and then records, each a
big-endian u32 length and that many bytes: a 48-byte header and the payload. The directory
sink (``--present dir:PATH``) is read by :func:`read_directory`.

    python3 -m camp_sdk.present < records.bin      # one JSON line per record
"""

import csv
import json
import os
import struct
import sys
from dataclasses import dataclass

MAGIC = b"CPRS"
VERSION = 1
PREAMBLE = MAGIC + bytes([VERSION, 0, 0, 0])
HEADER = struct.Struct(">BBHIQQQQII")
assert HEADER.size == 48
MAX_PAYLOAD = 1 << 20
MODALITIES = ("text", "audio", "video")

KEYFRAME = 0x01
END_OF_UTTERANCE = 0x02
END_OF_TURN = 0x04
SKIPPED = 0x08
LATE = 0x10
DEFINED = 0x1F


class DecodeError(ValueError):
    """The bytes are not a valid version-1 record stream."""


@dataclass(frozen=True)
class Record:
    """One presented unit."""

    modality: str
    flags: int
    capture_id: int
    sync_index: int
    seq: int
    gen_us: int
    present_us: int
    arrival_us: int
    path: int
    payload: bytes

    @property
    def keyframe(self):
        return bool(self.flags & KEYFRAME)

    @property
    def end_of_utterance(self):
        return bool(self.flags & END_OF_UTTERANCE)

    @property
    def end_of_turn(self):
        return bool(self.flags & END_OF_TURN)

    @property
    def skipped(self):
        """A late video unit to decode but not show."""
        return bool(self.flags & SKIPPED)

    @property
    def late(self):
        return bool(self.flags & LATE)

    def encode(self):
        """The record's bytes (length field included), as camp-client writes them."""
        if len(self.payload) > MAX_PAYLOAD:
            raise ValueError("payload too long")
        header = HEADER.pack(MODALITIES.index(self.modality), self.flags, self.capture_id,
                             self.sync_index, self.seq, self.gen_us, self.present_us,
                             self.arrival_us, self.path, len(self.payload))
        return struct.pack(">I", len(header) + len(self.payload)) + header + self.payload


def parse_body(body):
    """Parses one record body (the bytes after its length field)."""
    if len(body) < HEADER.size:
        raise DecodeError(f"record of {len(body)} bytes is shorter than its header")
    (mod, flags, capture, k, seq, gen, present, arrival, path,
     plen) = HEADER.unpack_from(body)
    if mod >= len(MODALITIES):
        raise DecodeError(f"unknown modality code {mod}")
    if flags & ~DEFINED:
        raise DecodeError(f"undefined flag bits in {flags:#04x}")
    if plen != len(body) - HEADER.size:
        raise DecodeError(f"record of {len(body)} bytes says its payload is {plen} bytes")
    return Record(MODALITIES[mod], flags, capture, k, seq, gen, present, arrival, path,
                  bytes(body[HEADER.size:]))


class RecordReader:
    """Iterates over the records of a binary file-like object (socket makefile, stdin)."""

    def __init__(self, stream):
        self._stream = stream
        pre = self._read(len(PREAMBLE), allow_eof=False)
        if pre[:4] != MAGIC:
            raise DecodeError("not a CAMP presentation stream (bad magic)")
        if pre[4] != VERSION:
            raise DecodeError(f"presentation stream version {pre[4]} (this reader reads 1)")
        if pre[5:] != b"\0\0\0":
            raise DecodeError("reserved preamble bytes not zero")

    def _read(self, n, allow_eof):
        buf = bytearray()
        while len(buf) < n:
            chunk = self._stream.read(n - len(buf))
            if not chunk:
                if allow_eof and not buf:
                    return None
                raise DecodeError(f"stream ended inside a record ({len(buf)} bytes left over)")
            buf += chunk
        return bytes(buf)

    def __iter__(self):
        return self

    def __next__(self):
        head = self._read(4, allow_eof=True)
        if head is None:
            raise StopIteration
        (length,) = struct.unpack(">I", head)
        if length < HEADER.size:
            raise DecodeError(f"record of {length} bytes is shorter than its header")
        if length - HEADER.size > MAX_PAYLOAD:
            raise DecodeError(f"payload of {length - HEADER.size} bytes exceeds {MAX_PAYLOAD}")
        return parse_body(self._read(length, allow_eof=False))


def decode_all(data):
    """All records of a stream held in memory."""
    import io
    return list(RecordReader(io.BytesIO(data)))


def read_directory(path):
    """Reads a ``--present dir:PATH`` directory: {modality: [(row, payload), ...]}.

    ``row`` is the CSV index row as a dict of ints (seq, sync_index, gen_us, present_us,
    arrival_us, capture_id, path, keyframe, end_of_utterance, end_of_turn, skipped, late,
    offset, len); ``payload`` the unit's bytes cut from ``<modality>.bin``.
    """
    out = {}
    for m in MODALITIES:
        with open(os.path.join(path, f"{m}.bin"), "rb") as f:
            data = f.read()
        rows = []
        with open(os.path.join(path, f"{m}.csv"), newline="") as f:
            for row in csv.DictReader(f):
                r = {k: int(v) for k, v in row.items()}
                end = r["offset"] + r["len"]
                if end > len(data):
                    raise DecodeError(f"{m}.csv points past the end of {m}.bin")
                rows.append((r, data[r["offset"]:end]))
        out[m] = rows
    return out


def main():
    for r in RecordReader(sys.stdin.buffer):
        d = {k: getattr(r, k) for k in ("modality", "sync_index", "seq", "gen_us",
                                         "present_us", "arrival_us", "capture_id", "path",
                                         "keyframe", "end_of_utterance", "end_of_turn",
                                         "skipped", "late")}
        d["len"] = len(r.payload)
        print(json.dumps(d), flush=True)


if __name__ == "__main__":
    main()
