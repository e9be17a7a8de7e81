#!/usr/bin/env python3
"""A/V sync of real codecs through campd -> camp-client over a two-path netns lab, measured
in the output file by ffmpeg.

    tools/avsync.py --campd BIN --client BIN --out DIR [--cut-at S] [--words N] [--json]

1. The clip: N words spoken by espeak-ng, one every 800 ms, each placed so that its speech
   onset falls on a video frame boundary; a white flash (two frames at 25 fps) on each onset
   in an otherwise black video. Audio is encoded by libopus (20 ms frames, Ogg), video by
   libvpx (VP8, IVF); the words become text units.
2. The lab: namespaces A (campd) and B (camp-client) joined by two veth pairs in
   198.18.20.0/24 and 198.18.21.0/24; path 1 shaped by tbf; with --cut-at, path 1 is taken
   down that many seconds into the clip. Everything is removed on exit, also on failure.
3. The frames go to campd's ingest socket (camp_sdk, paced at media time); camp-client
   presents them into a directory (--present dir:...).
4. What was presented is written as a playable WebM: the Opus packets into Ogg (granule
   positions from their presentation times), the VP8 frames into IVF (timestamps from their
   presentation times), the words as WebVTT cues at the times they were presented, muxed by
   ffmpeg with -c copy.
5. ffprobe must read the WebM without an error. ffmpeg measures in it every speech onset
   (silencedetect) and every flash (signalstats YAVG); each word's A/V offset is its flash's
   time minus its onset's time (video - audio: positive means the sound came first), judged
   against ATSC IS-191 (-45..+15 ms) and ITU-R BT.1359 (-125..+45 ms). The same measurement
   of the input clip gives the offsets the encoders and the measurement themselves carry.

Prints a table (or with --json one JSON object) and writes the WebM, a PNG of the first
flash with its subtitle, and summary.json into DIR. Needs root, iproute2, ethtool, tc,
espeak-ng and ffmpeg (with libopus, libvpx and libass).
"""

import argparse
import json
import os
import re
import shutil
import struct
import subprocess
import sys
import tempfile
import threading
import time
import wave

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "sdk", "python"))

from camp_sdk.ingest import IngestClient, Turn  # noqa: E402
from camp_sdk.present import read_directory  # noqa: E402

FPS = 25
FRAME_MS = 1000 // FPS
OPUS_FRAME_MS = 20
OPUS_RATE = 48_000
WORD_EVERY_FRAMES = 20  # 800 ms
FIRST_ONSET_FRAME = 15  # 600 ms
FLASH_FRAMES = 2
WIDTH, HEIGHT = 160, 120
IS191 = (-45.0, 15.0)
BT1359 = (-125.0, 45.0)
# Words that start with a plosive or a stressed vowel: their onsets are sharp, so the
# silence detector finds them within a few ms (fricatives such as "three" fade in over tens
# of ms and move the measured onset by as much).
WORDS = ("pat tick box dig cap top bed kit pot gap tap duck peg cot bat dot bug kid pick tub "
         "cab dip tag pop").split()

NS_A, NS_B = "campav-a", "campav-b"
A_IPS = ("198.18.20.1", "198.18.21.1")
B_IPS = ("198.18.20.2", "198.18.21.2")
A_IFS = ("cavA0", "cavA1")
B_IFS = ("cavB0", "cavB1")
PORT = 4433


def run(*cmd, timeout=120, capture=True):
    out = subprocess.run(list(cmd), capture_output=capture, timeout=timeout)
    if out.returncode != 0:
        err = out.stderr.decode(errors="replace")[-2000:] if capture else ""
        raise RuntimeError(f"{' '.join(cmd)} exited {out.returncode}: {err}")
    return out


# ---------------------------------------------------------------------------- the clip

def read_wav(path):
    with wave.open(path, "rb") as w:
        assert w.getsampwidth() == 2 and w.getnchannels() == 1, path
        rate = w.getframerate()
        data = w.readframes(w.getnframes())
    return rate, list(struct.unpack(f"<{len(data) // 2}h", data))


def make_clip(d, n_words):
    """Writes speech.wav, video.gray (raw frames) and returns (words, onset frames, frames)."""
    words = WORDS[:n_words]
    rate, pieces = None, []
    for i, w in enumerate(words):
        path = os.path.join(d, f"word{i}.wav")
        run("espeak-ng", "-v", "en", "-s", "170", "-w", path, w)
        r, samples = read_wav(path)
        rate = rate or r
        assert r == rate
        # The word's own onset: its first sample above -30 dBFS.
        lead = next(k for k, s in enumerate(samples) if abs(s) > 1036)
        pieces.append((samples, lead))
    onsets = [FIRST_ONSET_FRAME + i * WORD_EVERY_FRAMES for i in range(n_words)]
    frames = onsets[-1] + WORD_EVERY_FRAMES
    total = frames * FRAME_MS * rate // 1000
    mix = [0] * total
    for (samples, lead), f in zip(pieces, onsets):
        at = f * FRAME_MS * rate // 1000 - lead
        for k, s in enumerate(samples[:total - at]):
            mix[at + k] = max(-32768, min(32767, mix[at + k] + s))
    with wave.open(os.path.join(d, "speech.wav"), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(struct.pack(f"<{len(mix)}h", *mix))
    flash = set(f + k for f in onsets for k in range(FLASH_FRAMES))
    with open(os.path.join(d, "video.gray"), "wb") as v:
        for f in range(frames):
            v.write(bytes([235 if f in flash else 16]) * (WIDTH * HEIGHT))
    return words, onsets, frames


def encode(d, frames):
    run("ffmpeg", "-v", "error", "-y", "-i", os.path.join(d, "speech.wav"), "-ar", str(OPUS_RATE),
        "-ac", "1", "-c:a", "libopus", "-b:a", "48k", "-frame_duration", str(OPUS_FRAME_MS),
        "-application", "voip", "-f", "ogg", os.path.join(d, "in.ogg"))
    run("ffmpeg", "-v", "error", "-y", "-f", "rawvideo", "-pix_fmt", "gray", "-s",
        f"{WIDTH}x{HEIGHT}", "-r", str(FPS), "-i", os.path.join(d, "video.gray"), "-frames:v",
        str(frames), "-c:v", "libvpx", "-pix_fmt", "yuv420p", "-g", str(FPS), "-deadline",
        "realtime", "-cpu-used", "8", "-b:v", "300k", "-f", "ivf", os.path.join(d, "in.ivf"))


# ------------------------------------------------------------------- Ogg and IVF framing

def _crc_table():
    table = []
    for i in range(256):
        r = i << 24
        for _ in range(8):
            r = ((r << 1) ^ 0x04C11DB7) if r & 0x80000000 else (r << 1)
        table.append(r & 0xFFFFFFFF)
    return table


CRC = _crc_table()


def ogg_crc(data):
    crc = 0
    for b in data:
        crc = ((crc << 8) & 0xFFFFFFFF) ^ CRC[((crc >> 24) ^ b) & 0xFF]
    return crc


def ogg_packets(data):
    """Packets of the (single) logical stream of an Ogg file (RFC 3533)."""
    packets, cur, at = [], b"", 0
    while at < len(data):
        if data[at:at + 4] != b"OggS":
            raise ValueError(f"no Ogg capture pattern at {at}")
        nseg = data[at + 26]
        lacing = data[at + 27:at + 27 + nseg]
        body = at + 27 + nseg
        for lace in lacing:
            cur += data[body:body + lace]
            body += lace
            if lace < 255:
                packets.append(cur)
                cur = b""
        at = body
    return packets


def ogg_write(path, packets_with_granule, serial=0x43414D50):
    """One packet per page; headers (granule 0) first, as RFC 7845 wants."""
    with open(path, "wb") as f:
        for seq, (packet, granule, flags) in enumerate(packets_with_granule):
            lacing = [255] * (len(packet) // 255) + [len(packet) % 255]
            header = struct.pack("<4sBBqIIIB", b"OggS", 0, flags, granule, serial, seq, 0,
                                 len(lacing)) + bytes(lacing)
            page = bytearray(header + packet)
            struct.pack_into("<I", page, 22, ogg_crc(page))
            f.write(page)


def ivf_frames(data):
    if data[:4] != b"DKIF":
        raise ValueError("not an IVF file")
    header_len = struct.unpack_from("<H", data, 6)[0]
    at, frames = header_len, []
    while at + 12 <= len(data):
        size, pts = struct.unpack_from("<Iq", data, at)
        frame = data[at + 12:at + 12 + size]
        frames.append((pts, frame, frame[0] & 1 == 0))  # VP8: bit 0 clear = key frame
        at += 12 + size
    return frames


def ivf_write(path, frames_ms):
    """frames_ms: (pts in ms, frame); time base 1/1000."""
    with open(path, "wb") as f:
        f.write(struct.pack("<4sHH4sHHIIII", b"DKIF", 0, 32, b"VP80", WIDTH, HEIGHT, 1000, 1,
                            len(frames_ms), 0))
        for pts, frame in frames_ms:
            f.write(struct.pack("<Iq", len(frame), pts) + frame)


def vtt_time(ms):
    ms = max(0, int(ms))
    return f"{ms // 3_600_000:02}:{ms // 60_000 % 60:02}:{ms // 1000 % 60:02}.{ms % 1000:03}"


# ------------------------------------------------------------------------ measurement

def onsets_s(path, follow_timestamps=True):
    """Speech onsets: ends of silences (below -30 dBFS, the level at which make_clip places
    each onset, for 100 ms or more).

    With `follow_timestamps`, the decoded audio is stretched or squeezed (up to 1000 samples
    per second) to follow its packets' timestamps, as a player that honours them does;
    without, it plays at its sample clock from the first packet on, as a player with a
    free-running audio device does."""
    comp = 1000 if follow_timestamps else 1
    out = run("ffmpeg", "-v", "info", "-nostats", "-i", path, "-vn", "-af",
              f"aresample=async={comp}:first_pts=0,silencedetect=n=-30dB:d=0.1", "-f", "null",
              "-")
    return [float(m) for m in re.findall(r"silence_end: ([0-9.]+)", out.stderr.decode())]


def flashes_s(path):
    """Times of the first frame of every run of bright frames."""
    out = run("ffmpeg", "-v", "error", "-i", path, "-an", "-vf",
              "signalstats,metadata=print:key=lavfi.signalstats.YAVG:file=-", "-f", "null", "-")
    times, t, bright_before = [], None, False
    for line in out.stdout.decode().splitlines():
        m = re.search(r"pts_time:([0-9.]+)", line)
        if m:
            t = float(m.group(1))
            continue
        m = re.search(r"YAVG=([0-9.]+)", line)
        if m and t is not None:
            bright = float(m.group(1)) > 128
            if bright and not bright_before:
                times.append(t)
            bright_before = bright
    return times


def decoded(path, stream):
    out = run("ffmpeg", "-v", "error", "-i", path, "-map", f"0:{stream}", "-f", "framecrc", "-")
    if out.stderr.strip():
        raise RuntimeError(f"ffmpeg decode errors in {path}: {out.stderr[-500:]!r}")
    return sum(1 for line in out.stdout.decode().splitlines() if line and not line.startswith("#"))


def pair_offsets(expected_s, onsets, flashes):
    """Per expected word time: (onset, flash, flash - onset in ms) or None where either is
    missing within 300 ms."""
    out = []
    for e in expected_s:
        o = min(onsets, key=lambda x: abs(x - e), default=None)
        f = min(flashes, key=lambda x: abs(x - e), default=None)
        if o is None or f is None or abs(o - e) > 0.3 or abs(f - e) > 0.3:
            out.append(None)
        else:
            out.append((o, f, (f - o) * 1000.0))
    return out


# ------------------------------------------------------------------------------- lab

class Lab:
    def __init__(self, rate_mbit):
        self.rate_mbit = rate_mbit

    def __enter__(self):
        self.down()
        try:
            run("ip", "netns", "add", NS_A)
            run("ip", "netns", "add", NS_B)
            for ns in (NS_A, NS_B):
                run("ip", "-n", ns, "link", "set", "lo", "up")
            for i in range(2):
                run("ip", "link", "add", A_IFS[i], "netns", NS_A, "type", "veth", "peer", "name",
                    B_IFS[i], "netns", NS_B)
                for ns, ifn, ip in ((NS_A, A_IFS[i], A_IPS[i]), (NS_B, B_IFS[i], B_IPS[i])):
                    run("ip", "-n", ns, "addr", "add", f"{ip}/24", "dev", ifn)
                    run("ip", "-n", ns, "link", "set", ifn, "up")
                    # veth senders must not leave checksums partial.
                    run("ip", "netns", "exec", ns, "ethtool", "-K", ifn, "tx", "off")
            # Path 1: a slower link, both directions.
            for ns, ifn in ((NS_A, A_IFS[1]), (NS_B, B_IFS[1])):
                run("tc", "-n", ns, "qdisc", "add", "dev", ifn, "root", "tbf", "rate",
                    f"{self.rate_mbit}mbit", "burst", "32kbit", "latency", "50ms")
        except BaseException:
            self.down()
            raise
        return self

    def cut(self, i):
        run("ip", "-n", NS_A, "link", "set", A_IFS[i], "down")

    @staticmethod
    def down():
        for ns in (NS_A, NS_B):
            subprocess.run(["ip", "netns", "del", ns], capture_output=True)

    def __exit__(self, *exc):
        self.down()


def stream_clip(args, d, clip, cut_at):
    words, onsets, audio, video = clip
    pres = os.path.join(d, "present")
    cert, ingest = os.path.join(d, "cert.der"), os.path.join(d, "ingest.sock")
    procs = []
    try:
        campd = subprocess.Popen(
            ["ip", "netns", "exec", NS_A, args.campd, "--address", A_IPS[0], "--address",
             A_IPS[1], "--port", str(PORT), "--io", "udp", "--self-signed", "--cert-out", cert,
             "--control-socket", "none", "--prometheus", "off", "--ingest", ingest,
             "--drain-seconds", "1"],
            stdout=subprocess.DEVNULL, stderr=open(os.path.join(d, "campd.log"), "wb"))
        procs.append(campd)
        deadline = time.monotonic() + 10
        while not (os.path.exists(cert) and os.path.exists(ingest)):
            if campd.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("campd did not start: " + open(os.path.join(d, "campd.log")).read()[-2000:])
            time.sleep(0.02)
        client = subprocess.Popen(
            ["ip", "netns", "exec", NS_B, args.client, "--local", B_IPS[0], "--server",
             f"{A_IPS[0]}:{PORT}", "--local", B_IPS[1], "--server", f"{A_IPS[1]}:{PORT}",
             "--ca", cert, "--seconds", "40", "--json", "--present", f"dir:{pres}"],
            stdout=subprocess.PIPE, stderr=open(os.path.join(d, "client.log"), "wb"))
        procs.append(client)
        units = [("a", i * OPUS_FRAME_MS, i) for i in range(len(audio))]
        units += [("v", pts * FRAME_MS, j) for j, (pts, _, _) in enumerate(video)]
        units += [("t", f * FRAME_MS, i) for i, f in enumerate(onsets)]
        order = {"t": 0, "a": 1, "v": 2}
        units.sort(key=lambda u: (u[1], order[u[0]]))
        cutter = None
        with IngestClient(ingest, retry_for=10.0) as c:
            turn = Turn(c, audio_frame_ms=OPUS_FRAME_MS, video_fps=FPS, pace=True)
            if cut_at is not None:
                cutter = threading.Timer(cut_at, args.lab.cut, (1,))
                cutter.start()
            for kind, ms, i in units:
                if kind == "a":
                    turn.audio(audio[i], end_of_turn=i == len(audio) - 1)
                elif kind == "v":
                    turn.video(video[i][1], keyframe=video[i][2],
                               end_of_turn=i == len(video) - 1)
                else:
                    turn.text(words[i], media_ms=ms, end_of_turn=i == len(words) - 1)
        out, _ = client.communicate(timeout=60)
        if cutter is not None:
            cutter.join()
        if client.returncode != 0:
            raise RuntimeError(f"camp-client exited {client.returncode}: "
                               + open(os.path.join(d, "client.log")).read()[-2000:])
        summary = json.loads(out.decode().strip().splitlines()[-1])
        return summary, read_directory(pres)
    finally:
        for p in procs:
            if p.poll() is None:
                p.terminate()
                try:
                    p.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()


def write_output(d, head, got):
    """The presented media as out.webm, timestamps from presentation times."""
    audio, video, text = got["audio"], got["video"], got.get("text", [])
    base = min(r["present_us"] for r, _ in audio + video)
    pre_skip = struct.unpack_from("<H", head[0], 10)[0]
    pages = [(head[0], 0, 0x02), (head[1], 0, 0)]
    last = 0
    for k, (r, payload) in enumerate(audio):
        g = pre_skip + (r["present_us"] - base) * OPUS_RATE // 1_000_000 + OPUS_RATE * OPUS_FRAME_MS // 1000
        g = max(g, last + 1)
        last = g
        pages.append((payload, g, 0x04 if k == len(audio) - 1 else 0))
    ogg_write(os.path.join(d, "out.ogg"), pages)
    frames, last = [], -1
    for r, payload in video:
        pts = max((r["present_us"] - base) // 1000, last + 1)
        last = pts
        frames.append((pts, payload))
    ivf_write(os.path.join(d, "out.ivf"), frames)
    with open(os.path.join(d, "out.vtt"), "w") as f:
        f.write("WEBVTT\n\n")
        for r, payload in text:
            start = (r["present_us"] - base) / 1000
            f.write(f"{vtt_time(start)} --> {vtt_time(start + 700)}\n"
                    f"{payload.decode(errors='replace')}\n\n")
    out = os.path.join(d, "out.webm")
    run("ffmpeg", "-v", "error", "-y", "-i", os.path.join(d, "out.ogg"), "-i",
        os.path.join(d, "out.ivf"), "-i", os.path.join(d, "out.vtt"), "-map", "0:a", "-map",
        "1:v", "-map", "2:s", "-c:a", "copy", "-c:v", "copy", "-c:s", "webvtt", out)
    return out


def summarise(offsets):
    return summarise_ms([o[2] for o in offsets if o is not None], len(offsets))


def summarise_ms(vals, words):
    inside = lambda w: sum(1 for v in vals if w[0] <= v <= w[1])  # noqa: E731
    return {
        "words": words,
        "measured": len(vals),
        "offset_ms_min": round(min(vals), 1) if vals else None,
        "offset_ms_max": round(max(vals), 1) if vals else None,
        "offset_ms_mean": round(sum(vals) / len(vals), 1) if vals else None,
        "inside_is191": inside(IS191),
        "inside_bt1359": inside(BT1359),
    }


def one_run(args, clip, head, cut_at, tag, reference):
    d = os.path.join(args.out, tag)
    shutil.rmtree(d, ignore_errors=True)
    os.makedirs(d)
    with Lab(args.path1_mbit) as lab:
        args.lab = lab
        summary, got = stream_clip(args, d, clip, cut_at)
    webm = write_output(d, head, got)
    probe = run("ffprobe", "-v", "error", "-show_streams", "-of", "json", webm)
    if probe.stderr.strip():
        raise RuntimeError(f"ffprobe: {probe.stderr.decode()[-500:]}")
    streams = sorted(s["codec_name"] for s in json.loads(probe.stdout)["streams"])
    expected = [f * FRAME_MS / 1000 for f in clip[1]]
    # The output's timeline starts at the first presented unit; audio frame 0 (reliable, so
    # always presented) has media time 0, so media time m plays near shift + m.
    a0 = got["audio"][0][0]["present_us"]
    shift = (a0 - min(r["present_us"] for r, _ in got["audio"] + got["video"])) / 1e6
    offsets = pair_offsets([e + shift for e in expected], onsets_s(webm), flashes_s(webm))
    # What the transport added: each word's offset in the output less its offset in the input
    # clip, measured the same way (cancels what the encoders and the detectors contribute).
    net = [o[2] - r[2] for o, r in zip(offsets, reference) if o is not None and r is not None]
    # The same output played with a free-running audio clock: audio presented faster than
    # real time (the receiver lowering its playout delay mid-speech) cannot be, so video
    # drifts ahead by as much as the delay was lowered.
    free = pair_offsets([e + shift for e in expected], onsets_s(webm, False), flashes_s(webm))
    playout = [r["present_us"] - r["gen_us"] for r, _ in got["audio"]]
    return {
        "run": tag,
        "cut_path1_at_s": cut_at,
        "client": {k: summary.get(k) for k in ("reliable_lost", "ended_by", "video_shown",
                                                "audio_deadline_miss", "outside_is191")},
        "streams": streams,
        "audio_sent": len(clip[2]),
        "audio_presented": len(got["audio"]),
        "audio_decoded": decoded(webm, "a"),
        "video_sent": len(clip[3]),
        "video_presented": len(got["video"]),
        "video_decoded": decoded(webm, "v"),
        "text_presented": len(got.get("text", [])),
        "offsets_ms": [None if o is None else round(o[2], 1) for o in offsets],
        **summarise(offsets),
        "net": {**summarise_ms(net, len(offsets)),
                "offsets_ms": [round(v, 1) for v in net]},
        "free_running_audio": summarise(free),
        "audio_playout_delay_ms": {"first": playout[0] / 1000, "last": playout[-1] / 1000,
                                   "min": min(playout) / 1000, "max": max(playout) / 1000},
        "webm": webm,
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--campd", required=True)
    ap.add_argument("--client", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--words", type=int, default=12)
    ap.add_argument("--cut-at", type=float, default=None,
                    help="also run with path 1 cut this many seconds into the clip")
    ap.add_argument("--path1-mbit", type=float, default=20.0)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("avsync.py: needs root (network namespaces)")
    for tool in ("espeak-ng", "ffmpeg", "ffprobe", "ip", "tc", "ethtool"):
        if shutil.which(tool) is None:
            sys.exit(f"avsync.py: {tool} not found (tools/test.sh --install-only installs it)")
    os.makedirs(args.out, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="camp-av-") as d:
        words, onsets, frames = make_clip(d, args.words)
        encode(d, frames)
        pk = ogg_packets(open(os.path.join(d, "in.ogg"), "rb").read())
        head, audio = pk[:2], pk[2:]
        video = ivf_frames(open(os.path.join(d, "in.ivf"), "rb").read())
        clip = (words, onsets, audio, video)
        expected = [f * FRAME_MS / 1000 for f in onsets]
        ref_offsets = pair_offsets(
            expected, onsets_s(os.path.join(d, "in.ogg")), flashes_s(os.path.join(d, "in.ivf")))
    reference = {**summarise(ref_offsets),
                 "offsets_ms": [None if o is None else round(o[2], 1) for o in ref_offsets]}
    runs = [one_run(args, clip, head, None, "healthy", ref_offsets)]
    if args.cut_at is not None:
        runs.append(one_run(args, clip, head, args.cut_at, "cut", ref_offsets))
    result = {"input": reference, "runs": runs}
    png = os.path.join(args.out, "avsync_frame.png")
    first = runs[0]
    flash = flashes_s(first["webm"])
    if flash:
        at = flash[0] + 0.02
        run("ffmpeg", "-v", "error", "-y", "-ss", f"{at:.3f}", "-i", first["webm"], "-vf",
            f"setpts=PTS+{at:.3f}/TB,scale=640:-1,subtitles={first['webm']},setpts=PTS-STARTPTS",
            "-frames:v", "1", png)
        result["png"] = png
    with open(os.path.join(args.out, "summary.json"), "w") as f:
        json.dump(result, f, indent=1)
    if args.json:
        print(json.dumps(result))
        return
    print(f"input clip: {reference['measured']}/{reference['words']} words measured, offset "
          f"{reference['offset_ms_min']}..{reference['offset_ms_max']} ms")
    print("| run | audio sent/presented/decoded | video sent/presented/decoded | words "
          "measured | A/V offset ms min / mean / max | inside IS-191 | inside BT.1359 | "
          "added by transport ms min / mean / max | added inside IS-191 |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in runs:
        n = r["net"]
        print(f"| {r['run']} | {r['audio_sent']}/{r['audio_presented']}/{r['audio_decoded']} | "
              f"{r['video_sent']}/{r['video_presented']}/{r['video_decoded']} | "
              f"{r['measured']}/{r['words']} | {r['offset_ms_min']} / {r['offset_ms_mean']} / "
              f"{r['offset_ms_max']} | {r['inside_is191']}/{r['measured']} | "
              f"{r['inside_bt1359']}/{r['measured']} | {n['offset_ms_min']} / "
              f"{n['offset_ms_mean']} / {n['offset_ms_max']} | {n['inside_is191']}/{n['measured']} |")
    for r in runs:
        f, p = r["free_running_audio"], r["audio_playout_delay_ms"]
        print(f"{r['run']}: audio playout delay {p['first']:.1f} -> {p['last']:.1f} ms; with a "
              f"free-running audio clock the offsets would be {f['offset_ms_min']}..."
              f"{f['offset_ms_max']} ms, {f['inside_is191']}/{f['measured']} inside IS-191")


if __name__ == "__main__":
    main()
