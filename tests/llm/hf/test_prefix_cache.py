"""The prefix store: longest common prefix across entries, subsumption, LRU by token budget."""

import numpy as np
import pytest
import torch

from compound.llm.hf.prefix_cache import PrefixCache, common_prefix_length


def kv_for(tokens):
    """Fake one-layer KV whose values encode the token ids, so slices can be checked."""
    t = torch.tensor(tokens, dtype=torch.float32).view(1, 1, -1, 1)
    return [(t.clone(), -t.clone())]


@pytest.mark.parametrize(
    "a, b, expected",
    [([1, 2, 3], [1, 2, 3], 3), ([1, 2, 3], [1, 2], 2), ([1, 2], [3], 0), ([], [1], 0), ([5, 6, 7], [5, 6, 8, 9], 2)],
)
def test_common_prefix_length(a, b, expected):
    assert common_prefix_length(np.array(a), np.array(b)) == expected


def test_match_returns_longest_prefix_over_all_entries_and_its_states():
    cache = PrefixCache(capacity_tokens=100)
    cache.insert([1, 2, 3, 4], kv_for([1, 2, 3, 4]))
    cache.insert([1, 2, 9, 9, 9], kv_for([1, 2, 9, 9, 9]))
    n, kv = cache.match([1, 2, 9, 9, 5, 6])
    assert n == 4
    assert kv[0][0].flatten().tolist() == [1, 2, 9, 9]
    assert kv[0][1].flatten().tolist() == [-1, -2, -9, -9]


def test_match_leaves_room_for_one_token_to_run():
    cache = PrefixCache(capacity_tokens=100)
    cache.insert([1, 2, 3], kv_for([1, 2, 3]))
    n, _ = cache.match([1, 2, 3], max_length=2)
    assert n == 2


def test_miss_and_disabled_cache():
    cache = PrefixCache(capacity_tokens=100)
    cache.insert([1, 2], kv_for([1, 2]))
    assert cache.match([7, 8]) == (0, None)
    off = PrefixCache(capacity_tokens=0)
    off.insert([1, 2], kv_for([1, 2]))
    assert len(off) == 0 and off.match([1, 2]) == (0, None)


def test_an_extension_replaces_the_entry_it_extends():
    cache = PrefixCache(capacity_tokens=100)
    cache.insert([1, 2], kv_for([1, 2]))
    cache.insert([1, 2, 3, 4], kv_for([1, 2, 3, 4]))
    assert len(cache) == 1 and cache.total_tokens == 4
    cache.insert([1, 2, 3], kv_for([1, 2, 3]))  # already covered: nothing new is stored
    assert len(cache) == 1 and cache.total_tokens == 4


def test_budget_evicts_least_recently_used_first():
    cache = PrefixCache(capacity_tokens=10)
    cache.insert([1, 1, 1, 1], kv_for([1, 1, 1, 1]))
    cache.insert([2, 2, 2, 2], kv_for([2, 2, 2, 2]))
    cache.match([1, 1, 5])  # touch the first entry
    cache.insert([3, 3, 3, 3], kv_for([3, 3, 3, 3]))
    assert cache.total_tokens == 8
    assert cache.match([2, 2])[0] == 0  # the untouched entry went
    assert cache.match([1, 1])[0] == 2
    assert cache.stats.evicted_entries == 1
    cache.insert(list(range(11)), kv_for(list(range(11))))  # larger than the budget: ignored
    assert cache.total_tokens == 8


def test_insert_rejects_mismatched_lengths():
    cache = PrefixCache(capacity_tokens=10)
    with pytest.raises(ValueError):
        cache.insert([1, 2, 3], kv_for([1, 2]))
