"""The Python reader of the CPRS record stream against the documented bytes."""

import io
import os
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

from camp_sdk.present import (  # noqa: E402
    PREAMBLE, DecodeError, Record, RecordReader, decode_all, read_directory)

# docs/wire-format.md section 9 example (also camp-present's unit test).
SAMPLE = bytes.fromhex(
    "00000033" "01050007" "00000102" "0000000000000a0b" "0000010203040506"
    "000000000a0b0c0d" "000000000a0b0000" "00000001" "00000003" "deadbe")


class PresentReader(unittest.TestCase):
    def test_documented_example(self):
        [r] = decode_all(PREAMBLE + SAMPLE)
        self.assertEqual(r.modality, "audio")
        self.assertTrue(r.keyframe and r.end_of_turn)
        self.assertFalse(r.skipped or r.late or r.end_of_utterance)
        self.assertEqual((r.capture_id, r.sync_index, r.seq), (7, 258, 0x0A0B))
        self.assertEqual((r.gen_us, r.present_us, r.arrival_us, r.path),
                         (0x010203040506, 0x0A0B0C0D, 0x0A0B0000, 1))
        self.assertEqual(r.payload, b"\xde\xad\xbe")
        self.assertEqual(r.encode(), SAMPLE)

    def test_round_trip_in_small_reads(self):
        recs = [Record(m, f, c, k, s, g, p, a, path, bytes([k % 256]) * n)
                for (m, f, c, k, s, g, p, a, path, n) in [
                    ("text", 0, 0, 1, 0, 5, 9, 7, 0, 5),
                    ("video", 0x18, 0xFFFF, 2, 1, 40, 90, 95, 3, 0),
                    ("audio", 0x02, 1, 3, 2, 2**63, 2**64 - 1, 0, 2**32 - 1, 300)]]
        data = PREAMBLE + b"".join(r.encode() for r in recs)

        class Trickle(io.RawIOBase):
            def __init__(self, b):
                self.b = b

            def read(self, n=-1):
                k = min(3, n)
                out, self.b = self.b[:k], self.b[k:]
                return out

        self.assertEqual(list(RecordReader(Trickle(data))), recs)

    def test_bad_streams(self):
        for data, msg in [(b"RIFF\x01\0\0\0", "magic"), (b"CPRS\x02\0\0\0", "version"),
                          (b"CPRS\x01\0\0", "ended"), (PREAMBLE + SAMPLE[:30], "ended"),
                          (PREAMBLE + b"\0\0\0\x2f", "shorter"),
                          (PREAMBLE + SAMPLE[:4] + b"\x03" + SAMPLE[5:], "modality"),
                          (PREAMBLE + SAMPLE[:5] + b"\x20" + SAMPLE[6:], "flag"),
                          (PREAMBLE + SAMPLE[:51] + b"\x02" + SAMPLE[52:], "payload is")]:
            with self.subTest(msg=msg):
                with self.assertRaisesRegex(DecodeError, msg):
                    decode_all(data)

    def test_arbitrary_bytes_give_records_or_decode_errors(self):
        import random
        rnd = random.Random(5)
        valid = PREAMBLE + SAMPLE
        accepted = 0
        for _ in range(3000):
            if rnd.random() < 0.5:
                data = bytearray(valid)
                for _ in range(rnd.randint(1, 4)):
                    data[rnd.randrange(len(data))] = rnd.randrange(256)
            else:
                data = PREAMBLE + rnd.randbytes(rnd.randint(0, 120))
            try:
                recs = decode_all(bytes(data))
            except DecodeError:
                continue
            accepted += 1
            self.assertEqual(PREAMBLE + b"".join(r.encode() for r in recs), bytes(data))
        self.assertGreater(accepted, 100, "mutated timestamps and ids still decode")

    def test_directory_reader_cuts_payloads(self):
        with tempfile.TemporaryDirectory() as d:
            header = ("seq,sync_index,gen_us,present_us,arrival_us,capture_id,path,keyframe,"
                      "end_of_utterance,end_of_turn,skipped,late,offset,len\n")
            for m in ("text", "audio", "video"):
                with open(os.path.join(d, f"{m}.csv"), "w") as f:
                    f.write(header)
                    if m == "audio":
                        f.write("0,0,10,60,50,0,0,0,0,0,0,0,0,2\n1,0,30,80,70,0,0,0,0,1,0,0,2,3\n")
                with open(os.path.join(d, f"{m}.bin"), "wb") as f:
                    f.write(b"abcde" if m == "audio" else b"")
            out = read_directory(d)
            self.assertEqual([p for _, p in out["audio"]], [b"ab", b"cde"])
            self.assertEqual(out["audio"][1][0]["end_of_turn"], 1)
            self.assertEqual(out["video"], [])


if __name__ == "__main__":
    unittest.main()
