"""camp_sdk.ingest: argument checks and back-pressure against a scripted socket, then a
whole turn through a real campd and camp-client --present on 127.0.0.1."""

import json
import os
import socket
import sys
import tempfile
import threading
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
sys.path.insert(0, os.path.dirname(__file__))

from camp_sdk.ingest import (  # noqa: E402
    BackPressure, IngestClient, IngestError, ShuttingDown, Turn, _error)
import harness  # noqa: E402


class Scripted:
    """A Unix socket that answers each line with the next scripted reply."""

    def __init__(self, replies):
        self.replies = list(replies)
        self.lines = []
        self._tmp = tempfile.TemporaryDirectory()
        self.path = os.path.join(self._tmp.name, "ingest.sock")
        self._l = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._l.bind(self.path)
        self._l.listen(1)
        self._t = threading.Thread(target=self._serve, daemon=True)
        self._t.start()

    def _serve(self):
        conn, _ = self._l.accept()
        with conn, conn.makefile("rb") as f:
            for line in f:
                self.lines.append(json.loads(line))
                reply = self.replies.pop(0) if self.replies else {"ok": True, "queued": 0}
                conn.sendall((json.dumps(reply) + "\n").encode())

    def close(self):
        self._l.close()
        self._tmp.cleanup()


class Offline(unittest.TestCase):
    def test_lines_and_turn_clock(self):
        s = Scripted([{"ok": True, "queued": i} for i in range(1, 10)])
        try:
            with IngestClient(s.path, session=2) as c:
                t = Turn(c, audio_frame_ms=20, video_fps=25)
                self.assertEqual(t.video(b"\x00\x01", keyframe=True), 1)
                self.assertEqual(t.audio(b"aa"), 2)
                t.audio(b"bb")
                t.audio(b"cc")
                t.text("héllo", end_of_utterance=True, capture_id=3)
                t.video(b"\x02", end_of_turn=True)
                self.assertEqual(t.unfinished(), ["audio", "text"])
                with self.assertRaises(ValueError):
                    t.video(b"late")
            v0, a0, a1, a2, txt, v1 = s.lines
            self.assertEqual(v0, {"modality": "video", "sync_index": 0, "media_ms": 0.0,
                                  "keyframe": True, "end_of_turn": False,
                                  "payload_b64": "AAE=", "session": 2})
            self.assertEqual([a["media_ms"] for a in (a0, a1, a2)], [0.0, 20.0, 40.0])
            self.assertEqual([a["sync_index"] for a in (a0, a1, a2)], [0, 0, 1])
            self.assertEqual((txt["media_ms"], txt["sync_index"], txt["payload_b64"]),
                             (60.0, 1, "aMOpbGxv"))
            self.assertEqual((txt["end_of_utterance"], txt["capture_id"]), (True, 3))
            self.assertNotIn("capture_id", a0)
            self.assertEqual((v1["media_ms"], v1["end_of_turn"]), (40.0, True))
        finally:
            s.close()

    def test_arguments_campd_would_refuse_are_not_sent(self):
        s = Scripted([])
        try:
            with IngestClient(s.path) as c:
                for kw in [dict(modality="smell", payload=b"x"),
                           dict(modality="audio", payload=b""),
                           dict(modality="audio", payload=b"x" * (128 * 1024 + 1)),
                           dict(modality="audio", payload=b"x", media_ms=-1),
                           dict(modality="audio", payload=b"x", sync_index=2**32),
                           dict(modality="video", payload=b"x", deadline_ms=60_001),
                           dict(modality="video", payload=b"x", capture_id=65536)]:
                    kw.setdefault("sync_index", 0)
                    kw.setdefault("media_ms", 0)
                    with self.subTest(**{k: str(v)[:20] for k, v in kw.items()}):
                        with self.assertRaises(ValueError):
                            c.send(**kw)
                c.send("audio", 80, sync_index=0, media_ms=0)
            self.assertEqual(len(s.lines), 1)
            self.assertEqual(s.lines[0]["size"], 80)
        finally:
            s.close()

    def test_back_pressure_is_retried_then_raised(self):
        full = {"ok": False, "error": "queue_full", "detail": "engine queue full"}
        s = Scripted([full, full, {"ok": True, "queued": 7}] + [full] * 1000)
        try:
            with IngestClient(s.path, retry_for=0.2) as c:
                self.assertEqual(c.send("audio", b"x", sync_index=0, media_ms=0), 7)
                self.assertEqual(c.backpressure_retries, 2)
                with self.assertRaises(BackPressure) as e:
                    c.send("audio", b"y", sync_index=0, media_ms=20)
                self.assertEqual(e.exception.kind, "queue_full")
        finally:
            s.close()

    def test_error_kinds(self):
        self.assertIsInstance(_error({"ok": False, "error": "shutting_down"}), ShuttingDown)
        e = _error({"ok": False, "error": "bad_json", "detail": "eof"})
        self.assertEqual((type(e), e.kind, e.detail), (IngestError, "bad_json", "eof"))
        with self.assertRaises(IngestError) as c:
            IngestClient("/nonexistent/camp/ingest.sock")
        self.assertEqual(c.exception.kind, "connection")


class EndToEnd(unittest.TestCase):
    def test_a_turn_reaches_the_renderer_intact_and_in_time(self):
        rnd = __import__("random").Random(12)
        with harness.Loopback(present="socket") as lab:
            with IngestClient(lab.ingest) as c:
                # campd's own refusal comes back typed.
                c._sock.sendall(b'{"modality":"smell","sync_index":0,"media_ms":0,"size":1}\n')
                self.assertEqual(_error(json.loads(c._reader.readline())).kind, "bad_modality")
                t = Turn(c, pace=True)
                sent = {"text": [], "audio": [], "video": []}
                words = "the quick brown fox jumps over the lazy dog".split()
                for i in range(50):  # one second
                    last = i == 49
                    if i % 2 == 0:
                        frame = rnd.randbytes(rnd.randint(2000, 9000))
                        t.video(frame, keyframe=i == 0, end_of_turn=i == 48)
                        sent["video"].append((frame, t.video_ms - t.video_frame_ms))
                    if i % 6 == 0 or last:
                        w = words[(i // 6) % len(words)] + " "
                        t.text(w, end_of_turn=last, end_of_utterance=last, capture_id=9)
                        sent["text"].append((w.encode(), t.audio_ms))
                    frame = rnd.randbytes(rnd.randint(60, 120))
                    sent["audio"].append((frame, t.audio_ms))
                    t.audio(frame, end_of_turn=last)
                self.assertEqual(t.unfinished(), [])
            summary = lab.finish()
        self.assertEqual(summary["reliable_lost"], 0, summary)
        got = {m: [r for r in lab.records if r.modality == m] for m in sent}
        for m in ("text", "audio"):
            self.assertEqual([r.payload for r in got[m]], [p for p, _ in sent[m]], m)
            self.assertEqual([r.seq for r in got[m]], list(range(len(sent[m]))))
        self.assertTrue(got["audio"][-1].end_of_turn and got["text"][-1].end_of_turn)
        self.assertEqual({r.capture_id for r in got["text"]}, {9})
        self.assertEqual([r.end_of_utterance for r in got["text"]],
                         [False] * (len(got["text"]) - 1) + [True])
        self.assertEqual({r.capture_id for r in got["audio"]}, {0})
        # Video is droppable: what was presented is intact and in order.
        by_payload = {p: i for i, (p, _) in enumerate(sent["video"])}
        shown = [by_payload[r.payload] for r in got["video"]]
        self.assertEqual(shown, sorted(shown))
        self.assertGreater(len(shown), len(sent["video"]) // 2)
        # Presentation follows media time: within a turn, present_us - gen_us is the
        # playout delay, which CAMP raises at most a few times by small steps.
        a0 = got["audio"][0]
        offsets = [(r.present_us - a0.present_us) - (r.gen_us - a0.gen_us)
                   for r in got["audio"]]
        self.assertLess(max(abs(o) for o in offsets), 100_000, offsets)
        # Video plays with the audio of the same media time: within ATSC IS-191's
        # tighter bound (15 ms) except for a frame delivered late.
        audio_at = {r.gen_us: r.present_us for r in got["audio"]}
        paired = [(r.present_us - audio_at[r.gen_us]) for r in got["video"]
                  if r.gen_us in audio_at and not r.late]
        self.assertGreater(len(paired), len(got["video"]) // 2)
        self.assertLessEqual(max(abs(d) for d in paired), 15_000, paired)

if __name__ == "__main__":
    unittest.main()
