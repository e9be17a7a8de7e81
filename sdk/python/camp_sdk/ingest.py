"""Client of campd's ingest socket (``campd --ingest PATH``).

One JSON line per unit, one JSON reply per line (docs/engine.md, "Ingest lines")::

    with IngestClient("/run/camp/ingest.sock") as campd:
        turn = Turn(campd)
        turn.text("Hello", media_ms=0)
        turn.audio(opus_frame)                 # media time advances by the frame length
        turn.video(h264_access_unit, keyframe=True)
        ...
        turn.audio(last_frame, end_of_turn=True)

Errors campd reports become exceptions: :class:`IngestError` (``kind`` is campd's error
kind, e.g. ``bad_modality``), :class:`BackPressure` when campd's queue is full (retried
for ``retry_for`` seconds before it is raised) and :class:`ShuttingDown`.
"""

import base64
import json
import socket
import time

#: Largest payload campd accepts, bytes.
MAX_PAYLOAD = 128 * 1024
#: Longest media time campd accepts, ms (one day).
MAX_MEDIA_MS = 86_400_000.0
#: Longest deadline campd accepts, ms.
MAX_DEADLINE_MS = 60_000.0
MODALITIES = ("text", "audio", "video")


class IngestError(Exception):
    """campd refused a unit (or the connection failed: kind ``connection``)."""

    def __init__(self, kind, detail=""):
        super().__init__(f"{kind}: {detail}" if detail else kind)
        self.kind = kind
        self.detail = detail


class BackPressure(IngestError):
    """campd's engine queue stayed full for longer than the client's ``retry_for``."""


class ShuttingDown(IngestError):
    """campd is shutting down and accepts no more units."""


def _error(reply):
    kind = reply.get("error", "unknown")
    detail = reply.get("detail", "")
    if kind == "queue_full":
        return BackPressure(kind, detail)
    if kind == "shutting_down":
        return ShuttingDown(kind, detail)
    return IngestError(kind, detail)


class IngestClient:
    """One connection to campd's ingest socket.

    ``retry_for`` is how long a unit refused with ``queue_full`` is retried (with
    exponential backoff from 1 ms) before :class:`BackPressure` is raised; 0 raises at once.
    ``session`` targets one campd session (default: the lowest open one).
    """

    def __init__(self, path, timeout=5.0, retry_for=1.0, session=None):
        self.path = path
        self.retry_for = retry_for
        self.session = session
        self.sent = 0
        self.backpressure_retries = 0
        try:
            self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            self._sock.settimeout(timeout)
            self._sock.connect(path)
        except OSError as e:
            raise IngestError("connection", f"{path}: {e}") from e
        self._reader = self._sock.makefile("rb")

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self):
        """Closes the connection (units already acknowledged stay queued in campd)."""
        try:
            self._reader.close()
        finally:
            self._sock.close()

    def send(self, modality, payload, *, sync_index, media_ms, keyframe=False,
             end_of_turn=False, end_of_utterance=False, capture_id=None, deadline_ms=None,
             session=None):
        """Sends one unit; returns campd's count of units queued so far.

        ``payload`` is bytes (1..=MAX_PAYLOAD) or an int (a filler payload of that size,
        for load tests). ``capture_id`` (0..=65535, 65535 = composed, RFC 8849) says
        which capture the unit carries; campd uses 0 when it is left out. Raises ValueError for arguments campd would refuse, without
        sending them, and IngestError (or a subclass) for a refusal from campd.
        """
        if modality not in MODALITIES:
            raise ValueError(f"modality {modality!r}: expected one of {MODALITIES}")
        if isinstance(sync_index, bool) or not isinstance(sync_index, int) \
                or not 0 <= sync_index < 2**32:
            raise ValueError(f"sync_index {sync_index!r}: expected an int in 0..2**32")
        media_ms = float(media_ms)
        if not 0.0 <= media_ms <= MAX_MEDIA_MS:
            raise ValueError(f"media_ms {media_ms}: expected 0..={MAX_MEDIA_MS}")
        line = {
            "modality": modality,
            "sync_index": sync_index,
            "media_ms": media_ms,
            "keyframe": bool(keyframe),
            "end_of_turn": bool(end_of_turn),
        }
        if end_of_utterance:
            line["end_of_utterance"] = True
        if capture_id is not None:
            if isinstance(capture_id, bool) or not isinstance(capture_id, int) \
                    or not 0 <= capture_id <= 0xFFFF:
                raise ValueError(f"capture_id {capture_id!r}: expected an int in 0..=65535")
            line["capture_id"] = capture_id
        if isinstance(payload, int) and not isinstance(payload, bool):
            size = payload
        else:
            payload = bytes(payload)
            size = len(payload)
            line["payload_b64"] = base64.b64encode(payload).decode("ascii")
        if not 1 <= size <= MAX_PAYLOAD:
            raise ValueError(f"payload of {size} bytes: expected 1..={MAX_PAYLOAD}")
        if "payload_b64" not in line:
            line["size"] = size
        if deadline_ms is not None:
            deadline_ms = float(deadline_ms)
            if not 0.0 <= deadline_ms <= MAX_DEADLINE_MS:
                raise ValueError(f"deadline_ms {deadline_ms}: expected 0..={MAX_DEADLINE_MS}")
            line["deadline_ms"] = deadline_ms
        target = session if session is not None else self.session
        if target is not None:
            line["session"] = int(target)
        data = (json.dumps(line, separators=(",", ":")) + "\n").encode()
        give_up = time.monotonic() + self.retry_for
        backoff = 0.001
        while True:
            reply = self._roundtrip(data)
            if reply.get("ok") is True:
                self.sent += 1
                return int(reply.get("queued", 0))
            err = _error(reply)
            if isinstance(err, BackPressure) and time.monotonic() + backoff <= give_up:
                self.backpressure_retries += 1
                time.sleep(backoff)
                backoff = min(backoff * 2, 0.05)
                continue
            raise err

    def _roundtrip(self, data):
        try:
            self._sock.sendall(data)
            reply = self._reader.readline()
        except OSError as e:
            raise IngestError("connection", str(e)) from e
        if not reply:
            raise IngestError("connection", "campd closed the ingest connection")
        try:
            value = json.loads(reply)
        except ValueError as e:
            raise IngestError("bad_reply", reply[:200].decode("utf-8", "replace")) from e
        if not isinstance(value, dict):
            raise IngestError("bad_reply", repr(value)[:200])
        return value


class Turn:
    """One LLM turn's media clock: keeps media time and sync index per modality.

    Audio and video advance their own media time by one frame per call
    (``audio_frame_ms``, ``1000 / video_fps``); text tokens are stamped with the media time
    of the speech they belong to (``media_ms=``, default: the audio clock). The sync index
    ``k`` of a unit is ``media_ms // sync_period_ms`` (default: one video frame), so a word,
    its speech and the face saying it share ``k`` (draft-song-tsvwg-camp-00 section 3.1.1);
    pass ``sync_index=`` to override. If ``pace`` is set, each unit is sent no earlier than
    its media time after the first unit (a live pipeline paces itself and leaves it off).
    """

    def __init__(self, client, audio_frame_ms=20.0, video_fps=25.0, sync_period_ms=None,
                 pace=False):
        self.client = client
        self.audio_frame_ms = float(audio_frame_ms)
        self.video_frame_ms = 1000.0 / float(video_fps)
        self.sync_period_ms = float(sync_period_ms or self.video_frame_ms)
        self.pace = pace
        self.audio_ms = 0.0
        self.video_ms = 0.0
        self.ended = {}
        self._t0 = None

    def sync_index_at(self, media_ms):
        """The sync index of media time ``media_ms``."""
        return int(media_ms // self.sync_period_ms)

    def _send(self, modality, payload, media_ms, sync_index, **kw):
        if self.ended.get(modality):
            raise ValueError(f"{modality} already ended this turn")
        if self.pace:
            now = time.monotonic()
            if self._t0 is None:
                self._t0 = now - media_ms / 1000.0
            delay = self._t0 + media_ms / 1000.0 - now
            if delay > 0:
                time.sleep(delay)
        k = self.sync_index_at(media_ms) if sync_index is None else sync_index
        queued = self.client.send(modality, payload, sync_index=k, media_ms=media_ms, **kw)
        self.ended[modality] = bool(kw.get("end_of_turn"))
        return queued

    def text(self, token, media_ms=None, sync_index=None, end_of_turn=False,
             end_of_utterance=False, capture_id=None):
        """Sends a text token (str is UTF-8 encoded) at ``media_ms`` (default: audio clock)."""
        payload = token.encode("utf-8") if isinstance(token, str) else token
        at = self.audio_ms if media_ms is None else float(media_ms)
        return self._send("text", payload, at, sync_index, end_of_turn=end_of_turn,
                          end_of_utterance=end_of_utterance, capture_id=capture_id)

    def audio(self, frame, duration_ms=None, sync_index=None, end_of_turn=False,
              end_of_utterance=False, capture_id=None):
        """Sends one encoded audio frame at the audio clock, then advances it."""
        at = self.audio_ms
        queued = self._send("audio", frame, at, sync_index, end_of_turn=end_of_turn,
                            end_of_utterance=end_of_utterance, capture_id=capture_id)
        self.audio_ms = at + (self.audio_frame_ms if duration_ms is None else float(duration_ms))
        return queued

    def video(self, frame, keyframe=False, duration_ms=None, sync_index=None,
              end_of_turn=False, deadline_ms=None, capture_id=None):
        """Sends one encoded video frame at the video clock, then advances it."""
        at = self.video_ms
        queued = self._send("video", frame, at, sync_index, keyframe=keyframe,
                            end_of_turn=end_of_turn, deadline_ms=deadline_ms,
                            capture_id=capture_id)
        self.video_ms = at + (self.video_frame_ms if duration_ms is None else float(duration_ms))
        return queued

    def unfinished(self):
        """Modalities this turn used whose END_OF_TURN unit has not been sent."""
        return sorted(m for m, done in self.ended.items() if not done)
