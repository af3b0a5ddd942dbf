"""The translation cache: bounded LRU, hit rate, and only misses reach the model."""

from pathlib import Path

import grpc
import pytest

from conftest import make_config, needs_copy_model
from dragoman.v1 import dragoman_pb2 as pb
from dragoman.v1 import dragoman_pb2_grpc as pb_grpc
from dragoman_server.cache import TranslationCache

ARTICLE = (Path(__file__).parent / "data" / "articles" / "parlamento.txt").read_text("utf-8")


def test_lru_bounded_with_stats():
    cache = TranslationCache(2)
    cache.put("a", "A")
    cache.put("b", "B")
    assert cache.get("a") == "A"  # a is now the most recent
    cache.put("c", "C")  # evicts b
    assert cache.get("b") is None and cache.get("c") == "C" and len(cache) == 2
    stats = cache.stats()
    assert stats["hits"] == 2 and stats["misses"] == 1 and stats["evictions"] == 1
    assert stats["hit_rate"] == pytest.approx(2 / 3)


def test_size_zero_is_off():
    cache = TranslationCache(0)
    cache.put("a", "A")
    assert not cache.enabled and cache.get("a") is None and cache.stats()["misses"] == 0


def test_cache_size_setting():
    config = make_config(
        [{"name": "m", "task": "translation", "source": "x", "languages": ["pt-en"]}],
        cache_size=0,
    )
    assert config.server.cache_size == 0
    assert (
        make_config(
            config_models := [
                {"name": "m", "task": "translation", "source": "x", "languages": ["pt-en"]}
            ]
        ).server.cache_size
        == 10_000
    )
    assert config_models


@needs_copy_model
def test_repeated_copy_is_not_generated_twice(server):
    dataplane = server.server.dataplane
    batcher = dataplane.registry.get("copy-pt-en").batcher
    dataplane.cache.clear()
    with grpc.insecure_channel(server.address) as channel:
        stub = pb_grpc.DragomanStub(channel)
        request = pb.TranslateRequest(texts=[ARTICLE], source_language="pt", target_language="en")
        before = batcher.stats.segments
        hits_before = dataplane.cache.hits
        first = stub.Translate(request).translations[0]
        generated = batcher.stats.segments - before
        assert first.text == ARTICLE and generated > 10 and first.output_tokens > 0
        second = stub.Translate(request).translations[0]
        assert second.text == ARTICLE
        assert batcher.stats.segments - before == generated  # nothing new reached the model
        assert dataplane.cache.hits - hits_before == generated
        assert second.output_tokens == 0  # no model generated anything for it
        # The same story twice in one call (wire copy from two agencies): generated once.
        dataplane.cache.clear()
        before = batcher.stats.segments
        both = stub.Translate(
            pb.TranslateRequest(
                texts=[ARTICLE, ARTICLE], source_language="pt", target_language="en"
            )
        ).translations
        assert [t.text for t in both] == [ARTICLE, ARTICLE]
        assert batcher.stats.segments - before == generated
    stats = dataplane.cache.stats()
    print(f"\n[cache] {stats}")
    assert 0 < stats["hit_rate"] < 1


@needs_copy_model
def test_cache_is_per_model_and_pair(server):
    dataplane = server.server.dataplane
    dataplane.cache.clear()
    with grpc.insecure_channel(server.address) as channel:
        stub = pb_grpc.DragomanStub(channel)
        text = "O Governo aprovou hoje o orçamento."
        stub.Translate(
            pb.TranslateRequest(texts=[text], source_language="pt", target_language="en")
        )
        entries = len(dataplane.cache)
        # en->de is another model and pair: its segment is a new entry, not a hit on pt->en's.
        stub.Translate(
            pb.TranslateRequest(texts=[text], source_language="en", target_language="de")
        )
        assert len(dataplane.cache) == entries + 1
