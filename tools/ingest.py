#!/usr/bin/env python3
"""Reference client of campd's ingest socket (standard library only).

Sends a small synthetic LLM turn -- text tokens, 20 ms audio frames and 25 fps video
frames, all ending with end_of_turn -- as JSON lines, one unit per line, and prints
campd's reply to each.

    python3 tools/ingest.py --socket /run/camp/ingest.sock --seconds 2

campd must run with --ingest PATH. Units without "session" go to the lowest open session;
units sent before any session exists wait in campd for the first one.
"""

import argparse
import json
import socket
import sys
import time


def turn(seconds, pace):
    """Yields (media_ms, unit dict) in media-time order."""
    units = []
    audio_ms = 20.0
    video_ms = 40.0
    n_audio = int(seconds * 1000 / audio_ms)
    n_video = int(seconds * 1000 / video_ms)
    words = "the quick brown fox jumps over the lazy dog".split()
    n_text = max(1, int(seconds * 4))  # about four tokens a second
    for i in range(n_text):
        t = i * seconds * 1000.0 / n_text
        word = words[i % len(words)]
        units.append((t, {
            "modality": "text",
            "sync_index": int(t // video_ms),
            "media_ms": t,
            "size": len(word) + 1,
            "end_of_turn": i == n_text - 1,
        }))
    for i in range(n_audio):
        t = i * audio_ms
        units.append((t, {
            "modality": "audio",
            "sync_index": int(t // video_ms),
            "media_ms": t,
            "size": 80,  # a 20 ms Opus frame at 32 kbit/s
            "end_of_turn": i == n_audio - 1,
        }))
    for i in range(n_video):
        t = i * video_ms
        key = i % 25 == 0
        units.append((t, {
            "modality": "video",
            "sync_index": i,
            "media_ms": t,
            "size": 12000 if key else 3000,
            "keyframe": key,
            "end_of_turn": i == n_video - 1,
        }))
    units.sort(key=lambda u: u[0])
    start = time.monotonic()
    for t, u in units:
        if pace:
            delay = start + t / 1000.0 - time.monotonic()
            if delay > 0:
                time.sleep(delay)
        yield u


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--socket", default="/run/camp/ingest.sock", help="campd --ingest path")
    ap.add_argument("--seconds", type=float, default=2.0, help="length of the turn")
    ap.add_argument("--session", type=int, default=None, help="target session (default: lowest open)")
    ap.add_argument("--no-pace", action="store_true", help="send as fast as possible")
    ap.add_argument("--quiet", action="store_true", help="print only a summary")
    args = ap.parse_args()

    try:
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(5.0)
        s.connect(args.socket)
    except OSError as e:
        print(f"ingest.py: cannot connect to {args.socket}: {e}", file=sys.stderr)
        return 1
    reader = s.makefile("r", encoding="utf-8")
    ok = errors = 0
    for unit in turn(args.seconds, not args.no_pace):
        if args.session is not None:
            unit["session"] = args.session
        s.sendall((json.dumps(unit) + "\n").encode())
        reply = reader.readline()
        if not reply:
            print("ingest.py: campd closed the connection", file=sys.stderr)
            return 1
        if not args.quiet:
            print(reply.rstrip())
        try:
            ok += 1 if json.loads(reply).get("ok") else 0
            errors += 0 if json.loads(reply).get("ok") else 1
        except ValueError:
            errors += 1
    print(f"ingest.py: {ok} units queued, {errors} refused")
    return 0 if errors == 0 else 2


if __name__ == "__main__":
    sys.exit(main())
