"""Real codecs end to end: a two-second clip encoded by ffmpeg (AAC in ADTS, H.264 Annex B
with access-unit delimiters), split into units, paced through campd -> camp-client
--present dir:PATH on 127.0.0.1, and checked byte for byte, decodable, and in sync.

Skips when ffmpeg (with libx264) is not installed, unless CI is set.
"""

import os
import shutil
import subprocess
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
sys.path.insert(0, os.path.dirname(__file__))

from camp_sdk.ingest import IngestClient, Turn  # noqa: E402
from camp_sdk.present import read_directory  # noqa: E402
import harness  # noqa: E402

SECONDS = 2
RATE = 48_000
AAC_FRAME_MS = 1024 * 1000 / RATE  # one AAC frame is 1024 samples
FPS = 25


def ffmpeg():
    exe = shutil.which("ffmpeg")
    if exe is None:
        if os.environ.get("CI"):
            raise RuntimeError("ffmpeg is required in CI (tools/test.sh installs it)")
        raise unittest.SkipTest("ffmpeg not installed")
    return exe


def adts_frames(data):
    """Splits an ADTS stream into its frames (ISO/IEC 13818-7: 13-bit frame_length)."""
    frames, at = [], 0
    while at < len(data):
        h = data[at:at + 7]
        if len(h) < 7 or h[0] != 0xFF or h[1] & 0xF0 != 0xF0:
            raise ValueError(f"no ADTS sync word at {at}")
        n = ((h[3] & 0x03) << 11) | (h[4] << 3) | (h[5] >> 5)
        if n < 7 or at + n > len(data):
            raise ValueError(f"bad ADTS frame length {n} at {at}")
        frames.append(data[at:at + n])
        at += n
    return frames


def nal_starts(data):
    """(offset of the start code, offset of the NAL header) of every Annex B NAL unit."""
    out, i = [], 0
    while True:
        i = data.find(b"\x00\x00\x01", i)
        if i < 0:
            return out
        start = i - 1 if i > 0 and data[i - 1] == 0 else i
        out.append((start, i + 3))
        i += 3


def h264_access_units(data):
    """Splits Annex B H.264 at its access-unit delimiters (NAL type 9); returns
    (access unit, has an IDR slice)."""
    nals = nal_starts(data)
    aus, cur, idr = [], None, False
    for k, (start, hdr) in enumerate(nals):
        t = data[hdr] & 0x1F
        if t == 9:
            if cur is not None:
                aus.append((data[cur:start], idr))
            cur, idr = start, False
        elif t == 5:
            idr = True
    if cur is not None:
        aus.append((data[cur:], idr))
    return aus


def decoded_frames(exe, path):
    """Frames (video) or audio frames ffmpeg decodes from `path` without an error."""
    out = subprocess.run([exe, "-v", "error", "-i", path, "-f", "framecrc", "-"],
                         capture_output=True, timeout=60)
    if out.returncode != 0 or out.stderr.strip():
        raise AssertionError(f"ffmpeg could not decode {path}: {out.stderr[-500:]!r}")
    return sum(1 for line in out.stdout.decode().splitlines()
               if line and not line.startswith("#"))


class RealCodecs(unittest.TestCase):
    def test_aac_and_h264_arrive_intact_and_in_sync(self):
        exe = ffmpeg()
        with tempfile.TemporaryDirectory(prefix="camp-codec-") as d:
            aac, h264 = os.path.join(d, "a.aac"), os.path.join(d, "v.h264")
            subprocess.run([exe, "-v", "error", "-f", "lavfi", "-i",
                            f"sine=frequency=440:sample_rate={RATE}:duration={SECONDS}",
                            "-c:a", "aac", "-b:a", "64k", "-f", "adts", aac],
                           check=True, timeout=60)
            subprocess.run([exe, "-v", "error", "-f", "lavfi", "-i",
                            f"testsrc=size=320x240:rate={FPS}:duration={SECONDS}",
                            "-c:v", "libx264", "-preset", "ultrafast", "-tune", "zerolatency",
                            "-g", str(FPS), "-bf", "0", "-pix_fmt", "yuv420p",
                            "-bsf:v", "h264_metadata=aud=insert", "-f", "h264", h264],
                           check=True, timeout=60)
            audio = adts_frames(open(aac, "rb").read())
            video = h264_access_units(open(h264, "rb").read())
            self.assertGreaterEqual(len(video), SECONDS * FPS)
            self.assertTrue(video[0][1], "the first access unit is an IDR")
            n_video_decoded = decoded_frames(exe, h264)

            with harness.Loopback(present="dir", seconds=30) as lab:
                with IngestClient(lab.ingest) as c:
                    turn = Turn(c, audio_frame_ms=AAC_FRAME_MS, video_fps=FPS, pace=True)
                    units = [("a", i * AAC_FRAME_MS, i) for i in range(len(audio))]
                    units += [("v", j * 1000 / FPS, j) for j in range(len(video))]
                    units.sort(key=lambda u: (u[1], u[0]))
                    for kind, _, i in units:
                        if kind == "a":
                            turn.audio(audio[i], end_of_turn=i == len(audio) - 1)
                        else:
                            turn.video(video[i][0], keyframe=video[i][1],
                                       end_of_turn=i == len(video) - 1)
                summary = lab.finish()
                got = read_directory(lab.present_dir)
                got_audio_file = open(os.path.join(lab.present_dir, "audio.bin"), "rb").read()
                video_file = os.path.join(lab.present_dir, "video.bin")
                got_video_file = open(video_file, "rb").read()
                self.assertEqual(summary["reliable_lost"], 0, summary)
                # Audio is reliable: the presented stream is the encoder's file, byte for byte.
                self.assertEqual(got_audio_file, open(aac, "rb").read())
                self.assertEqual(len(got["audio"]), len(audio))
                # Video is droppable: every presented access unit is the one sent at that
                # index, in order; on loopback all of them should arrive.
                sent_at = {au: j for j, (au, _) in enumerate(video)}
                idx = [sent_at[p] for _, p in got["video"]]
                self.assertEqual(idx, sorted(set(idx)))
                self.assertEqual([r["keyframe"] for r, _ in got["video"]],
                                 [int(video[j][1]) for j in idx])
                if len(idx) == len(video):
                    self.assertEqual(got_video_file, open(h264, "rb").read())
                    self.assertEqual(decoded_frames(exe, video_file), n_video_decoded)
                self.assertGreaterEqual(len(idx), len(video) * 9 // 10)
                # In sync: each unit's presentation time minus its media time is the playout
                # delay; measure its spread over audio and the A/V offset per video frame.
                a0 = got["audio"][0][0]
                base_p, base_g = a0["present_us"], a0["gen_us"]

                def offset(r):
                    return (r["present_us"] - base_p) - (r["gen_us"] - base_g)

                audio_off = [offset(r) for r, _ in got["audio"]]
                spread = max(audio_off) - min(audio_off)
                # A/V offset of a video frame: its offset minus that of the audio frame
                # playing at its media time (audio rows are in seq order, all present).
                av = [offset(r) - audio_off[min(int(j * 1000 / FPS / AAC_FRAME_MS),
                                                len(audio) - 1)]
                      for (r, _), j in zip(got["video"], idx) if not r["late"]]
                print(f"\ncodecs: {len(audio)} AAC frames, {len(video)} H.264 access units "
                      f"({sum(len(a) for a in audio)} + {sum(len(v) for v, _ in video)} B); "
                      f"video shown {len(idx)}; audio playout-delay spread {spread} us; "
                      f"A/V offset min {min(av)} max {max(av)} us", file=sys.stderr)
                self.assertLess(spread, 100_000, audio_off)
                # ATSC IS-191 (the receiver's convention, video − audio): video at most 15 ms behind
                # (audio early) and 45 ms ahead of its audio.
                self.assertTrue(all(-45_000 <= d <= 15_000 for d in av), av)

if __name__ == "__main__":
    unittest.main()
