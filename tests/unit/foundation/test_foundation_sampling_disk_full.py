"""A Recorder whose evidence cannot be written (disk full) ends loudly with a bench error: a verdict must never
rest on samples the report cannot show (it used to return 1 sample and no error)."""
import pytest

from v2g_bench.errors import BenchError
from v2g_bench.harness.sampling import Recorder


def test_disk_full_for_the_samples_is_a_bench_error():
    rec = Recorder(lambda: {"dc_w": 1.0}, rate_hz=100)
    rec.path = "/dev/full"                       # every write fails with ENOSPC, as on a full disk
    rec.start()
    with pytest.raises(BenchError, match="cannot write the samples' evidence /dev/full"):
        rec.wait_until(lambda r: False, timeout=5, what="never")
    with pytest.raises(BenchError, match="No space left"):
        rec.stop()
