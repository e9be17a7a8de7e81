"""camp_sdk: the application side of CAMP (standard library only).

* :mod:`camp_sdk.ingest` -- push an LLM -> TTS -> avatar pipeline's units (text tokens,
  audio frames, video frames) to campd's ingest socket, with typed errors and back-pressure.
* :mod:`camp_sdk.present` -- read what ``camp-client --present`` hands a renderer: the CPRS
  record stream (docs/wire-format.md section 9) or the directory sink.
"""

from .ingest import (
    BackPressure,
    IngestClient,
    IngestError,
    MAX_PAYLOAD,
    ShuttingDown,
    Turn,
)
from .present import (
    DecodeError,
    Record,
    RecordReader,
    decode_all,
    read_directory,
)

__all__ = [
    "BackPressure",
    "DecodeError",
    "IngestClient",
    "IngestError",
    "MAX_PAYLOAD",
    "Record",
    "RecordReader",
    "ShuttingDown",
    "Turn",
    "decode_all",
    "read_directory",
]
