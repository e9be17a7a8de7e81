#!/usr/bin/env python3
"""Sends a synthetic LLM turn to campd's ingest socket, using the camp_sdk library.

Text tokens (about four a second), 20 ms audio frames and 25 fps video frames, each stream
ending with end_of_turn; prints campd's count of queued units per unit (or a summary).

    python3 tools/ingest.py --socket /run/camp/ingest.sock --seconds 2

campd must run with --ingest PATH. Units without a session go to the lowest open session;
units sent before any session exists wait in campd for the first one. An application uses
sdk/python/camp_sdk directly (docs/engine.md, "Applications on both ends").
"""

import argparse
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "sdk", "python"))

from camp_sdk import IngestClient, IngestError, Turn  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--socket", default="/run/camp/ingest.sock", help="campd --ingest path")
    ap.add_argument("--seconds", type=float, default=2.0, help="length of the turn")
    ap.add_argument("--session", type=int, default=None, help="target session (default: lowest open)")
    ap.add_argument("--no-pace", action="store_true", help="send as fast as possible")
    ap.add_argument("--quiet", action="store_true", help="print only a summary")
    args = ap.parse_args()

    words = "the quick brown fox jumps over the lazy dog".split()
    n_audio = int(args.seconds * 1000 / 20)
    n_text = max(1, int(args.seconds * 4))
    ok = 0
    try:
        with IngestClient(args.socket, session=args.session) as c:
            turn = Turn(c, audio_frame_ms=20, video_fps=25, pace=not args.no_pace)
            for i in range(n_audio):
                last = i == n_audio - 1
                if i % 2 == 0:
                    j = i // 2
                    key = j % 25 == 0
                    queued = turn.video(12000 if key else 3000, keyframe=key,
                                        end_of_turn=i >= n_audio - 2)
                    ok += 1
                    if not args.quiet:
                        print(f"video {j}: queued {queued}")
                if (i * n_text) // n_audio != ((i - 1) * n_text) // n_audio or last:
                    word = words[ok % len(words)] + " "
                    queued = turn.text(word, end_of_turn=last)
                    ok += 1
                    if not args.quiet:
                        print(f"text {word!r}: queued {queued}")
                queued = turn.audio(80, end_of_turn=last)  # a 20 ms Opus frame at 32 kbit/s
                ok += 1
                if not args.quiet:
                    print(f"audio {i}: queued {queued}")
    except IngestError as e:
        print(f"ingest.py: {e} (after {ok} units)", file=sys.stderr)
        return 2 if e.kind != "connection" else 1
    print(f"ingest.py: {ok} units queued")
    return 0


if __name__ == "__main__":
    sys.exit(main())
