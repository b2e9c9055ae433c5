"""Batch plans: seeded and reproducible, length-grouped, evenly sharded over workers."""

from __future__ import annotations

from codedance_core.train.sft_batches import plan_epoch, shard_batches


def test_plan_is_a_function_of_seed_and_epoch():
    lengths = [5, 80, 12, 40, 7, 66, 30, 3, 90, 21]
    assert plan_epoch(lengths, 3, seed=1, epoch=0) == plan_epoch(lengths, 3, seed=1, epoch=0)
    assert plan_epoch(lengths, 3, seed=1, epoch=0) != plan_epoch(lengths, 3, seed=1, epoch=1)
    covered = sorted(i for batch in plan_epoch(lengths, 3, seed=1, epoch=0) for i in batch)
    assert covered == list(range(len(lengths)))


def test_length_grouping_puts_similar_lengths_together():
    lengths = [i * 10 for i in range(64)]
    grouped = plan_epoch(lengths, 4, seed=0, epoch=0, group_by_length=True, group_batches=16)
    random_order = plan_epoch(lengths, 4, seed=0, epoch=0, group_by_length=False)

    def padding(batches):
        return sum(max(lengths[i] for i in b) * len(b) - sum(lengths[i] for i in b) for b in batches)

    assert padding(grouped) < padding(random_order) / 4


def test_shards_are_disjoint_and_equal_in_size():
    batches = [[i] for i in range(7)]
    shards = [shard_batches(batches, rank, 3) for rank in range(3)]
    assert [len(s) for s in shards] == [2, 2, 2]
    assert sorted(b[0] for s in shards for b in s) == list(range(6))
