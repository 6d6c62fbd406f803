"""The reply cache: keys that capture what a greedy reply depends on, LRU bound, off at 0."""

import pytest

from compound.llm.hf.reply_cache import Reply, ReplyCache, reply_key


def test_keys_differ_with_prompt_budget_and_stop_strings():
    base = reply_key([1, 2, 3], 12, ("\n",))
    assert base == reply_key((1, 2, 3), 12, ["\n"])  # any sequence types
    assert len({base, reply_key([1, 2], 12, ("\n",)), reply_key([1, 2, 3], 11, ("\n",)), reply_key([1, 2, 3], 12, ())}) == 4
    assert reply_key([1, 2, 3, 4], 12, ()) != reply_key([1, 2, 34], 12, ())  # token boundaries count


def test_least_recently_used_reply_is_evicted_first():
    cache = ReplyCache(max_entries=2)
    a, b, c = (Reply((i,), str(i), "stop") for i in range(3))
    cache.put(b"a", a)
    cache.put(b"b", b)
    assert cache.get(b"a") is a  # now b is the oldest
    cache.put(b"c", c)
    assert len(cache) == 2 and cache.get(b"b") is None and cache.get(b"a") is a and cache.get(b"c") is c
    cache.clear()
    assert len(cache) == 0 and cache.get(b"a") is None


def test_zero_entries_keeps_nothing_and_negative_is_refused():
    off = ReplyCache(max_entries=0)
    off.put(b"a", Reply((1,), "x", "stop"))
    assert not off.enabled and off.get(b"a") is None
    with pytest.raises(ValueError, match="max_entries"):
        ReplyCache(max_entries=-1)


def test_docstring_examples_run():
    import doctest

    from compound.llm.hf import reply_cache

    result = doctest.testmod(reply_cache)
    assert result.attempted > 0 and result.failed == 0
