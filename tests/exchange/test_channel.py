"""Framing of the exchange: schema first, packed batches, end-of-stream; read by plain pyarrow
(the TF side, tensorflow-io, is exercised in tests/worker)."""

import socket
import threading

import pyarrow as pa

from flinkdl.exchange.channel import ArrowChannel, ExchangeClosed, pack, unpack

SCHEMA = pa.schema([("event_id", pa.int64()), ("x", pa.float32())])
OUT = pa.schema([("event_id", pa.int64())])


def _echo_worker(ch: ArrowChannel, seen: list):
    out = socket.socket(socket.AF_UNIX)
    out.connect(ch.out_path)
    inp = socket.socket(socket.AF_UNIX)
    inp.connect(ch.in_path)
    with out.makefile("wb") as sink, inp.makefile("rb") as src:
        writer = pa.ipc.new_stream(sink, OUT)
        for batch in pa.ipc.open_stream(src):
            seen.append(batch)
            writer.write_batch(pa.record_batch([batch.column(0)], schema=OUT))
            sink.flush()
        writer.close()


def test_batches_round_trip_in_order_and_stream_ends_cleanly(tmp_path):
    ch = ArrowChannel(SCHEMA, OUT, tmp_path)
    seen: list = []
    t = threading.Thread(target=_echo_worker, args=(ch, seen))
    t.start()
    ch.accept(timeout=10)
    for i in range(5):
        b = pa.record_batch([pa.array(range(i * 10, i * 10 + 10), pa.int64()), pa.array([0.5] * 10, pa.float32())],
                            schema=SCHEMA)
        ch.send_payload(pack(b))
        assert ch.receive().column(0).equals(b.column(0))
    ch.finish()
    t.join(10)
    assert not t.is_alive() and len(seen) == 5
    try:
        ch.receive()
        raise AssertionError("expected end of stream")
    except ExchangeClosed:
        pass
    ch.close()
    assert not list(tmp_path.iterdir()), "sockets and their directory are removed"


def test_pack_is_zero_copy_readable():
    b = pa.record_batch([pa.array([1, 2], pa.int64()), pa.array([1.0, 2.0], pa.float32())], schema=SCHEMA)
    assert unpack(pack(b), SCHEMA).equals(b)
