"""Kept host memory: large tensors allocated and freed step after step end up reusing mapped pages instead of
faulting fresh ones in (glibc takes a few rounds to settle: aligned allocations leave small holes at first)."""

import resource
import sys

import pytest
import torch

from textvae.training.host_memory import keep_freed_host_memory


def page_faults_of_a_fresh_tensor(megabytes: int) -> int:
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    torch.empty(megabytes * 2**18).fill_(1.0)  # freed at once
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt")
def test_freed_memory_is_reused_without_page_faults():
    if not keep_freed_host_memory():
        pytest.skip("not glibc")
    assert keep_freed_host_memory()  # a second call is harmless
    for _ in range(15):  # settling
        page_faults_of_a_fresh_tensor(40)
    pages = 40 * 2**20 // resource.getpagesize()
    steady = sum(page_faults_of_a_fresh_tensor(40) for _ in range(10))
    assert steady < pages  # without kept memory every one of the 10 faults all its pages in
