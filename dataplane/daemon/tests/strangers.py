#!/usr/bin/env python3
"""Strangers at campd's door, played by an independent QUIC stack (aioquic).

Run by dataplane/daemon/tests/edge.rs against a campd on loopback:

    strangers.py HOST PORT TIMEOUT_S

Three cases, each on a fresh connection:

* wrong_alpn: offers ALPN "h3" only; campd's TLS must refuse the handshake.
* garbage:    ALPN "camp/1", then bytes that are no CAMP frame on the first bidirectional
              stream; campd must close with its protocol-violation code and a reason.
* silent:     ALPN "camp/1", handshake, then nothing; campd must close after its HELLO
              timeout.

Prints one JSON object per case on stdout: what the client saw (whether the handshake
completed, the close's error code, frame type and reason phrase, seconds from the handshake
to the close) so the Rust test decides pass or fail.
"""

import asyncio
import json
import ssl
import sys
import time

from aioquic.asyncio import connect
from aioquic.asyncio.protocol import QuicConnectionProtocol
from aioquic.quic.configuration import QuicConfiguration
from aioquic.quic.events import ConnectionTerminated, HandshakeCompleted


class Observer(QuicConnectionProtocol):
    """Records the handshake and the close as they arrive."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.handshake_at = None
        self.terminated = asyncio.get_running_loop().create_future()

    def quic_event_received(self, event):
        if isinstance(event, HandshakeCompleted):
            self.handshake_at = time.monotonic()
        elif isinstance(event, ConnectionTerminated) and not self.terminated.done():
            self.terminated.set_result((time.monotonic(), event))
        super().quic_event_received(event)


async def one_case(name, host, port, alpn, timeout_s, after_handshake):
    config = QuicConfiguration(is_client=True, alpn_protocols=alpn)
    # campd's certificate is self-signed for a test name; this client is a stranger that
    # does not care who the server is, only how it is treated.
    config.verify_mode = ssl.CERT_NONE
    config.server_name = "camp.test"
    config.idle_timeout = timeout_s + 10
    result = {"case": name, "handshake": False, "terminated": False}
    try:
        async with connect(
            host,
            port,
            configuration=config,
            create_protocol=Observer,
            wait_connected=False,
        ) as proto:
            # wait_connected=False also leaves the first flight unsent.
            proto.transmit()
            try:
                at, ev = await asyncio.wait_for(asyncio.shield(proto.terminated), timeout_s)
            except asyncio.TimeoutError:
                at, ev = None, None
            if ev is None and after_handshake is not None and proto.handshake_at is not None:
                after_handshake(proto)
                try:
                    at, ev = await asyncio.wait_for(
                        asyncio.shield(proto.terminated), timeout_s
                    )
                except asyncio.TimeoutError:
                    at, ev = None, None
            result["handshake"] = proto.handshake_at is not None
            if ev is not None:
                result.update(
                    terminated=True,
                    error_code=ev.error_code,
                    frame_type=ev.frame_type,
                    reason=ev.reason_phrase,
                    after_handshake_s=(
                        at - proto.handshake_at if proto.handshake_at is not None else None
                    ),
                )
    except ConnectionError as e:
        # connect() raises once the connection is gone; the termination was recorded above
        # when it came with a close frame.
        result.setdefault("exception", repr(e))
    return result


def send_garbage(proto):
    stream = proto._quic.get_next_available_stream_id(is_unidirectional=False)
    proto._quic.send_stream_data(stream, b"NOT A CAMP FRAME, JUST GARBAGE\n" * 4)
    proto.transmit()


async def main():
    host, port, timeout_s = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
    cases = [
        # The handshake itself fails: the close comes before any application data.
        ("wrong_alpn", ["h3"], None),
        # Wait for the handshake (the first wait times out only if nothing closes), then send.
        ("garbage", ["camp/1"], send_garbage),
        ("silent", ["camp/1"], None),
    ]
    for name, alpn, action in cases:
        wait = 0.3 if action is not None else timeout_s
        r = await one_case(name, host, port, alpn, wait, action)
        print(json.dumps(r), flush=True)


if __name__ == "__main__":
    asyncio.run(main())
