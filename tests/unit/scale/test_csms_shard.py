"""The CSMS in two processes on one port (SO_REUSEPORT): connections spread over both, and every station's
frames are handled, in order, by one of them."""
import asyncio
import base64
import json

from websockets.asyncio.client import connect

from v2g_bench.csms.shard import ShardedCsms

PASSWORD = "shard-test-password-0123"


async def _stations(port, n, calls):
    async def one(i):
        sid = f"SH{i:03d}"
        hdr = {"Authorization": "Basic " + base64.b64encode(f"{sid}:{PASSWORD}".encode()).decode()}
        async with connect(f"ws://127.0.0.1:{port}/ocpp/{sid}", subprotocols=["ocpp2.0.1"], additional_headers=hdr,
                           ping_interval=None, open_timeout=60) as ws:
            for k in range(calls):
                await ws.send(json.dumps([2, f"{sid}-{k}", "Heartbeat", {}]))
                reply = json.loads(await asyncio.wait_for(ws.recv(), 30))
                assert reply[:2] == [3, f"{sid}-{k}"]
    await asyncio.gather(*(one(i) for i in range(n)))


def test_two_shards_share_the_stations_and_keep_each_one_in_order(tmp_path):
    record = str(tmp_path / "frames")
    with ShardedCsms({"security_profile": 1, "password": PASSWORD, "ocpp_versions": ["2.0.1"], "record_path": record},
                     shards=2, workdir=tmp_path) as csms:
        asyncio.run(asyncio.wait_for(_stations(csms.port, 40, 3), 120))
    assert len(csms.stats) == 2 and sum(s["violations"] for s in csms.stats) == 0
    assert sum(s["frames"] for s in csms.stats) == 40 * 3 * 2
    where: dict[str, set] = {}
    order: dict[str, list] = {}
    for shard in (0, 1):
        for line in open(f"{record}.shard{shard}.jsonl", encoding="utf-8"):
            r = json.loads(line)
            where.setdefault(r["station"], set()).add(shard)
            if r["dir"] == "in":
                order.setdefault(r["station"], []).append(int(r["id"].rsplit("-", 1)[1]))
    assert all(len(s) == 1 for s in where.values())                 # one station, one process
    assert {next(iter(s)) for s in where.values()} == {0, 1}        # both processes got stations
    assert all(seq == [0, 1, 2] for seq in order.values())


def test_bad_shard_count_is_refused(tmp_path):
    import pytest

    from v2g_bench.errors import BenchError
    with pytest.raises(BenchError, match="shards must be >= 1"):
        ShardedCsms({}, shards=0, workdir=tmp_path)
