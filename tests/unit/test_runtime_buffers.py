"""The two per-call buffers of the worker's hot path that the fixed mmap threshold made expensive
(core.runtime; docs/benchmarks.md, 2026-12-06, thirteenth session): asyncio's TLS read buffer and aiokafka's
zstd compression context. The oracle is the kernel's count of page faults: a buffer above the threshold is
mapped afresh on every call, and its first touch faults, whatever the machine's speed."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from aiokafka.producer.message_accumulator import BatchBuilder
from aiokafka.record.default_records import DefaultRecordBatch
from kafka.record.default_records import DefaultRecordBatch as KafkaPythonRecordBatch

from core import runtime
from infra import tls
from streams.writer import ATOMIC_BATCH_BYTES, CHANGELOG_CODEC

ROOT = Path(__file__).resolve().parents[2]

_FAULTS = """
import asyncio, json, resource, ssl, sys
from core import runtime
if sys.argv[1] == "tuned":
    assert runtime.tune_allocator()
else:  # the threshold alone, as the worker had it before
    assert runtime._libc().mallopt(runtime.M_MMAP_THRESHOLD, runtime.MMAP_THRESHOLD_BYTES)
from aiokafka.producer.message_accumulator import BatchBuilder
from streams.writer import ATOMIC_BATCH_BYTES, CHANGELOG_CODEC

def faults():
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt

def changelog_batches(n):  # what the writer builds for one changelog partition of a small agent batch
    for i in range(n):
        builder = BatchBuilder(ATOMIC_BATCH_BYTES, CHANGELOG_CODEC)
        for j in range(40):
            builder.append(key=b"entity-%d" % j, value=b'{"state": %d, "note": "%s"}' % (j, b"y" * 400),
                           timestamp=None, headers=[])
        builder._build()

async def tls_round_trips(n, server, key):
    server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_ctx.load_cert_chain(server, key)
    client_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    client_ctx.check_hostname, client_ctx.verify_mode = False, ssl.CERT_NONE
    async def serve(reader, writer):
        for _ in range(n + 1):
            writer.write(b"x" * 300)  # a produce acknowledgement, a small fetch response
            await writer.drain()
            await reader.readexactly(1)
        writer.close()
    srv = await asyncio.start_server(serve, "127.0.0.1", 0, ssl=server_ctx)
    reader, writer = await asyncio.open_connection("127.0.0.1", srv.sockets[0].getsockname()[1], ssl=client_ctx)
    await reader.readexactly(300)
    writer.write(b"a")
    start = faults()
    for _ in range(n):
        await reader.readexactly(300)
        writer.write(b"a")
    counted = faults() - start
    writer.close()
    srv.close()
    await srv.wait_closed()
    return counted

changelog_batches(5)  # warm
start = faults()
changelog_batches(200)
zstd = (faults() - start) / 200
tls = asyncio.run(tls_round_trips(2000, sys.argv[2], sys.argv[3])) / 2000
print(json.dumps({"zstd": zstd, "tls": tls}))
"""


@pytest.mark.skipif(runtime._libc() is None, reason="glibc's mallopt")
def test_the_hot_paths_per_call_buffers_stay_below_the_fixed_mmap_threshold(tmp_path: Path) -> None:
    files = tls.ensure(tmp_path / "tls")

    def faults(mode: str) -> dict[str, float]:
        out = subprocess.run([sys.executable, "-c", _FAULTS, mode, str(files.server_cert), str(files.server_key)],
                             capture_output=True, text=True, check=True, cwd=ROOT)
        return json.loads(out.stdout.strip().splitlines()[-1])

    threshold_only, tuned = faults("threshold-only"), faults("tuned")
    # the control: with the threshold alone, each call maps its buffer afresh (the test still shows the effect)
    assert threshold_only["zstd"] > 20, threshold_only
    assert threshold_only["tls"] >= 2, threshold_only
    assert tuned["zstd"] < 2, f"a changelog batch's compression still maps memory per call: {tuned}"
    assert tuned["tls"] < 0.5, f"a TLS read still maps its buffer per call: {tuned}"


def _changelog_batch(records: list[tuple[bytes, bytes]]) -> bytes:
    builder = BatchBuilder(ATOMIC_BATCH_BYTES, CHANGELOG_CODEC)
    for key, value in records:
        assert builder.append(key=key, value=value, timestamp=None, headers=[]) is not None
    return bytes(builder._build())


def test_a_changelog_batch_compressed_with_a_kept_context_reads_back_with_both_kafka_clients() -> None:
    assert "aiokafka.record._crecords.default_records" in runtime.reuse_zstd_contexts()
    assert runtime.reuse_zstd_contexts() == runtime.reuse_zstd_contexts()  # idempotent
    records = [(f"entity-{i}".encode(), json.dumps({"state": i, "note": "ü" * (i % 50)}).encode())
               for i in range(500)]
    for _ in range(3):  # the same context, reused: every batch is whole
        data = _changelog_batch(records)
        batch = DefaultRecordBatch(data)
        assert batch.compression_type == CHANGELOG_CODEC
        assert [(r.key, r.value) for r in batch] == records
        other = KafkaPythonRecordBatch(data)  # kafka-python's own reader and zstd decoder
        assert other.validate_crc()
        assert [(r.key, r.value) for r in other] == records
    assert len(data) < sum(len(k) + len(v) for k, v in records) / 3  # compressed, not stored


def test_threads_compress_with_contexts_of_their_own() -> None:
    import zstandard

    payloads = {t: [json.dumps({"thread": t, "n": n, "pad": "x" * (n * 37 % 900)}).encode() * 20
                    for n in range(200)] for t in range(4)}
    results: dict[int, list[bytes]] = {}
    contexts: dict[int, list[object]] = {}  # the compressors themselves: kept alive, their ids stay unique

    def work(t: int) -> None:
        results[t] = [runtime.zstd_encode(p) for p in payloads[t]]
        contexts[t] = list(runtime._zstd.by_level.values())

    threads = [threading.Thread(target=work, args=(t,)) for t in payloads]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    decompress = zstandard.ZstdDecompressor().decompress
    for t, outs in results.items():
        assert [decompress(o) for o in outs] == payloads[t]
    assert len({id(c) for cs in contexts.values() for c in cs}) == len(payloads)  # one compressor per thread
    assert decompress(runtime.zstd_encode(b"a" * 10_000, level=19)) == b"a" * 10_000  # a level of its own
