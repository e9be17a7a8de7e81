"""Runs a real campd and camp-client on 127.0.0.1 for the SDK tests.

The binaries come from CAMPD_BIN and CAMP_CLIENT_BIN (dataplane/daemon/tests/python_sdk.rs
sets them to cargo's builds). Without them the end-to-end tests skip, unless CI is set.
"""

import os
import socket
import subprocess
import tempfile
import threading
import time
import unittest

from camp_sdk.present import RecordReader


def binaries():
    campd, client = os.environ.get("CAMPD_BIN"), os.environ.get("CAMP_CLIENT_BIN")
    if campd and client and os.path.exists(campd) and os.path.exists(client):
        return campd, client
    if os.environ.get("CI"):
        raise RuntimeError("CAMPD_BIN / CAMP_CLIENT_BIN not set or missing")
    raise unittest.SkipTest("CAMPD_BIN / CAMP_CLIENT_BIN not set")


def free_udp_port():
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(paths, seconds=10.0, proc=None):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if all(os.path.exists(p) for p in paths):
            return
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode}")
        time.sleep(0.01)
    raise TimeoutError(f"waiting for {paths}")


class Loopback:
    """campd with an ingest socket, and camp-client presenting to ``present``.

    ``present`` is ``"socket"`` (records read on a thread into ``self.records``) or
    ``"dir"`` (``self.present_dir``). Everything lives in a temporary directory; both
    processes are killed on exit if still running, and bounded by ``seconds``.
    """

    def __init__(self, present="socket", seconds=20):
        self.campd_bin, self.client_bin = binaries()
        self.present = present
        self.seconds = seconds
        self.records = []
        self.reader_error = None

    def __enter__(self):
        self._tmp = tempfile.TemporaryDirectory(prefix="camp-sdk-")
        d = self._tmp.name
        self.dir = d
        self.cert = os.path.join(d, "cert.der")
        self.ingest = os.path.join(d, "ingest.sock")
        self.port = free_udp_port()
        self.campd = subprocess.Popen(
            [self.campd_bin, "--address", "127.0.0.1", "--port", str(self.port), "--io", "udp",
             "--self-signed", "--cert-out", self.cert, "--control-socket", "none",
             "--prometheus", "off", "--ingest", self.ingest, "--drain-seconds", "1"],
            stdout=subprocess.DEVNULL, stderr=open(os.path.join(d, "campd.log"), "wb"))
        wait_for([self.cert, self.ingest], proc=self.campd)
        if self.present == "socket":
            path = os.path.join(d, "render.sock")
            self._listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            self._listener.bind(path)
            self._listener.listen(1)
            self._listener.settimeout(self.seconds)
            target = f"unix:{path}"
            self._thread = threading.Thread(target=self._read_records, daemon=True)
            self._thread.start()
        else:
            self.present_dir = os.path.join(d, "present")
            target = f"dir:{self.present_dir}"
        self.client = subprocess.Popen(
            [self.client_bin, "--local", f"127.0.0.1:{free_udp_port()}", "--server",
             f"127.0.0.1:{self.port}", "--ca", self.cert, "--seconds", str(self.seconds),
             "--json", "--present", target],
            stdout=subprocess.PIPE, stderr=open(os.path.join(d, "client.log"), "wb"))
        return self

    def _read_records(self):
        try:
            conn, _ = self._listener.accept()
            conn.settimeout(self.seconds)
            with conn, conn.makefile("rb") as f:
                for r in RecordReader(f):
                    self.records.append(r)
        except Exception as e:  # reported by finish()
            self.reader_error = e

    def finish(self):
        """Waits for camp-client to end its session; returns its JSON summary."""
        import json
        out, _ = self.client.communicate(timeout=self.seconds + 10)
        if self.client.returncode != 0:
            raise RuntimeError(f"camp-client exited {self.client.returncode}: {self.log('client')}")
        if self.present == "socket":
            self._thread.join(timeout=10)
            if self.reader_error is not None:
                raise self.reader_error
        return json.loads(out.decode().strip().splitlines()[-1])

    def log(self, name):
        with open(os.path.join(self.dir, f"{name}.log"), "rb") as f:
            return f.read().decode("utf-8", "replace")[-4000:]

    def __exit__(self, *exc):
        for p in (getattr(self, "client", None), self.campd):
            if p is not None and p.poll() is None:
                p.terminate()
                try:
                    p.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()
        if self.present == "socket":
            self._listener.close()
        self._tmp.cleanup()
