"""shared.partitioning places keys exactly as Kafka's default partitioner (aiokafka's murmur2)."""

from __future__ import annotations

import random
from uuid import UUID

from aiokafka.partitioner import DefaultPartitioner, murmur2

from shared.partitioning import murmur2 as fast_murmur2
from shared.partitioning import partition_of


def test_murmur2_matches_aiokafkas_on_every_length_and_tail() -> None:
    rng = random.Random(7)
    for length in range(0, 130):
        for _ in range(40):
            data = rng.randbytes(length)
            assert fast_murmur2(data) == murmur2(data), data


def test_lead_keys_land_on_the_partition_the_default_partitioner_picks() -> None:
    rng = random.Random(11)
    for count in (1, 3, 6, 12, 100):
        everyone = list(range(count))
        for _ in range(500):
            key = str(UUID(int=rng.getrandbits(128))).encode()
            assert partition_of(key, count) == DefaultPartitioner()(key, everyone, everyone)
