import numpy as np
import pytest

from textvae.data.batching import BucketBatchSampler, fit_length, padding_fraction
from textvae.data.corpora import DataError


def test_fit_length_truncate_drop_error_and_empty():
    ids = [[1, 2, 3], [], [1] * 10, [4, 5]]
    kept, index, report = fit_length(ids, 4, "truncate")
    assert kept == [[1, 2, 3], [1] * 4, [4, 5]] and index == [0, 2, 3]
    assert (report.truncated, report.dropped, report.empty, report.kept) == (1, 0, 1, 3)
    kept, index, report = fit_length(ids, 4, "drop")
    assert index == [0, 3] and report.dropped == 1
    assert str(report) == "2 of 4 sentences kept; 1 dropped as longer than max_length=4, 1 empty dropped (first: sentence 1)"
    with pytest.raises(DataError, match="sentence 2 has 10 tokens, more than max_length=4"):
        fit_length(ids, 4, "error")


def test_bucketed_batches_cover_everything_once_and_cut_padding():
    rng = np.random.default_rng(0)
    lengths = rng.integers(3, 60, size=5000).tolist()
    sampler = BucketBatchSampler(lengths, batch_size=32, seed=1)
    batches = list(sampler)
    assert len(batches) == len(sampler) == 157
    assert sorted(i for b in batches for i in b) == list(range(5000))
    plain = list(BucketBatchSampler(lengths, batch_size=32, seed=1, bucket=False))
    assert padding_fraction(batches, lengths) < 0.05 < padding_fraction(plain, lengths)


def test_bucket_order_is_a_function_of_seed_and_epoch():
    lengths = list(range(1, 200))
    a = BucketBatchSampler(lengths, 8, seed=3)
    b = BucketBatchSampler(lengths, 8, seed=3)
    a.set_epoch(2)
    b.set_epoch(2)
    assert list(a) == list(b)
    assert list(a) == list(a)  # iterating does not change the order: only set_epoch does
    b.set_epoch(3)
    assert list(a) != list(b)
    assert list(BucketBatchSampler(lengths, 8, seed=4)) != list(BucketBatchSampler(lengths, 8, seed=3))


def test_drop_last_and_no_shuffle():
    sampler = BucketBatchSampler([5] * 10, 4, shuffle=False, drop_last=True)
    assert list(sampler) == [[0, 1, 2, 3], [4, 5, 6, 7]] and len(sampler) == 2


def test_same_length_batches_are_the_reference_codes_fixed_batches():
    lengths = [3, 5, 3, 3, 5, 7, 3, 5, 3]
    sampler = BucketBatchSampler(lengths, batch_size=2, seed=0, same_length=True)
    first = list(sampler)
    assert len(sampler) == len(first) == 3 + 2 + 1  # five 3s -> 2+2+1, three 5s -> 2+1, one 7
    assert all(len({lengths[i] for i in batch}) == 1 for batch in first)
    assert sorted(i for batch in first for i in batch) == list(range(len(lengths)))
    sampler.set_epoch(1)
    second = list(sampler)
    assert sorted(map(sorted, second)) == sorted(map(sorted, first))  # the same batches every epoch ...
    orders = [[tuple(b) for b in first]]
    for epoch in range(2, 8):
        sampler.set_epoch(epoch)
        orders.append([tuple(b) for b in sampler])
    assert len(set(map(tuple, orders))) > 1  # ... in a new order
    assert len(BucketBatchSampler(lengths, batch_size=2, same_length=True, drop_last=True)) == 2 + 1
