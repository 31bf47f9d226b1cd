"""hpcflow.allocator: after retain_freed_memory() a freed block is reused without new page faults.

Counted with getrusage's minor faults in a fresh interpreter: a 40 MB array (above glibc's largest automatic
mmap threshold, 32 MB) allocated, written and freed ten times faults every one of its 10,240 pages each time by
default, and (nearly) none after the call once the first round has populated the heap."""

import json
import os
import subprocess
import sys

import pytest

SCRIPT = r"""
import ctypes, json, resource, sys
from hpcflow.allocator import retain_freed_memory
libc = ctypes.CDLL(None)
libc.malloc.restype, libc.malloc.argtypes = ctypes.c_void_p, [ctypes.c_size_t]
libc.free.argtypes = [ctypes.c_void_p]
applied = retain_freed_memory() if sys.argv[1] == "1" else None
n = 40 * 2**20  # malloc + memset + free, as torch's CPU allocator does (numpy may madvise huge pages)

def one_round():
    p = libc.malloc(n)
    ctypes.memset(p, 1, n)
    libc.free(p)

one_round()  # the first round populates the heap (or maps and unmaps)
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(10):
    one_round()
print(json.dumps({"applied": applied, "faults": resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before}))
"""
PAGES = 40 * 2**20 // 4096


def _faults(retain: bool, env=None) -> dict:
    out = subprocess.run([sys.executable, "-c", SCRIPT, "1" if retain else "0"], check=True, capture_output=True,
                         text=True, env=env)
    return json.loads(out.stdout.splitlines()[-1])


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc malloc settings are Linux-only")
def test_freed_blocks_are_reused_without_page_faults_after_the_call():
    default, retained = _faults(False), _faults(True)
    assert default["faults"] >= 10 * PAGES * 0.9  # every page of every round (4 KiB pages)
    assert retained["applied"] is True
    assert retained["faults"] < 0.01 * PAGES


def test_the_users_own_malloc_settings_are_left_alone():
    env = dict(os.environ, MALLOC_TRIM_THRESHOLD_="0")
    assert _faults(True, env)["applied"] is False
