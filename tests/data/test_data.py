import pytest
import torch

from scalinglab import ConfigError
from scalinglab.data import MNIST1D, Synthetic
from scalinglab.data.tensors import DeviceBatches, MemberBatches


def test_mnist1d_standard_split_and_cache(data_dir):
    dm = MNIST1D(data_dir=str(data_dir))
    with pytest.warns(UserWarning, match="mnist1d: validation is the test split"):
        dm.setup()  # val_from_train=None: MNIST-1D's 1000 test examples validate
    assert dm.input_shape == (1, 40) and dm.num_classes == 10
    assert dm.x_train.shape == (4000, 1, 40) and dm.x_val.shape == (1000, 1, 40)
    assert set(dm.y_train.unique().tolist()) == set(range(10))
    cached = list(data_dir.glob("mnist1d-*.npz"))
    assert len(cached) == 1
    # A second datamodule reads the cache instead of regenerating it.
    mtime = cached[0].stat().st_mtime_ns
    again = MNIST1D(data_dir=str(data_dir))
    again.setup()
    assert cached[0].stat().st_mtime_ns == mtime
    assert torch.equal(again.x_train, dm.x_train)


def test_train_size_subsets_are_nested(data_dir):
    small, large = MNIST1D(train_size=500, data_dir=str(data_dir)), MNIST1D(
        train_size=2000, data_dir=str(data_dir))
    small.setup()
    large.setup()
    assert len(small.x_train) == 500 and len(large.x_train) == 2000
    rows_large = {tuple(r.tolist()) for r in large.x_train.flatten(1)}
    assert all(tuple(r.tolist()) in rows_large for r in small.x_train.flatten(1))


def test_train_size_larger_than_data_is_a_config_error(data_dir):
    with pytest.raises(ConfigError, match=r"data\.train_size=5000 .* 4000"):
        MNIST1D(train_size=5000, data_dir=str(data_dir))


def test_val_from_train_holds_training_examples_out_and_keeps_the_test_split(data_dir):
    plain = MNIST1D(data_dir=str(data_dir))
    plain.setup()
    dm = MNIST1D(val_from_train=500, data_dir=str(data_dir))
    dm.setup()
    assert len(dm.x_val) == 500 and len(dm.x_train) == 3500
    assert torch.equal(dm.x_test, plain.x_val) and torch.equal(dm.y_test, plain.y_val)
    rows = lambda x: {tuple(r.tolist()) for r in x.flatten(1)}  # noqa: E731
    pool, val, train = rows(plain.x_train), rows(dm.x_val), rows(dm.x_train)
    assert val | train == pool and not val & train  # a split of the training examples
    # the same validation examples whatever the subset: train_size subsets the rest
    sub = MNIST1D(val_from_train=500, train_size=1000, subset_seed=3, data_dir=str(data_dir))
    sub.setup()
    assert torch.equal(sub.x_val, dm.x_val) and rows(sub.x_train) <= train
    assert len(sub.x_train) == 1000 and plain.x_test is None


@pytest.mark.parametrize("kwargs,match", [
    ({"val_from_train": 0}, r"data\.val_from_train must be >= 1"),
    ({"val_from_train": 4000}, r"data\.val_from_train=4000 leaves none of the 4000"),
    ({"val_from_train": 500, "train_size": 4000}, r"data\.train_size=4000 .* 3500"),
])
def test_bad_val_from_train_is_a_config_error(data_dir, kwargs, match):
    with pytest.raises(ConfigError, match=match):
        MNIST1D(data_dir=str(data_dir), **kwargs)


def test_synthetic_data_draws_its_own_validation_set(data_dir):
    with pytest.raises(ConfigError, match=r"data\.val_size"):
        Synthetic(val_from_train=10, data_dir=str(data_dir))


def test_synthetic_data_has_a_test_split_of_its_own_stream(data_dir):
    small = Synthetic(train_size=1000, val_size=300, test_size=200, data_dir=str(data_dir))
    large = Synthetic(train_size=9000, val_size=300, test_size=200, data_dir=str(data_dir))
    small.setup()
    large.setup()
    assert small.has_test_split and len(small.x_test) == 200
    assert small.info["validation"] == "300 fresh examples (data.val_size)"
    assert torch.equal(small.x_test, large.x_test)  # one test split for every train size
    rows = lambda x: {tuple(r.tolist()) for r in x}  # noqa: E731
    assert not rows(small.x_test) & (rows(large.x_train) | rows(large.x_val))


def test_synthetic_is_seeded_nested_and_teacher_labelled(data_dir):
    a = Synthetic(train_size=3000, input_dim=8, num_classes=4, data_dir=str(data_dir))
    b = Synthetic(train_size=6000, input_dim=8, num_classes=4, data_dir=str(data_dir))
    a.setup()
    b.setup()
    assert a.input_shape == (8,) and a.num_classes == 4
    assert torch.equal(a.x_val, b.x_val)  # same held-out set for every train size
    rows_b = {tuple(r.tolist()) for r in b.x_train}
    assert all(tuple(r.tolist()) in rows_b for r in a.x_train)
    # every class appears; labels are a deterministic function of the inputs
    assert set(a.y_train.tolist()) == set(range(4))
    c = Synthetic(train_size=3000, input_dim=8, num_classes=4, data_dir=str(data_dir))
    c.setup()
    assert torch.equal(c.y_train.sort().values, a.y_train.sort().values)


def test_device_batches_shard_disjointly_across_ranks():
    x = torch.arange(103).float()
    y = torch.arange(103)
    seen = []
    for rank in range(2):
        batches = DeviceBatches(x, y, batch_size=5, shuffle=True, seed=7, rank=rank, world_size=2)
        assert len(batches) == 103 // 10
        seen.append(torch.cat([b[1] for b in batches]))
    assert len(seen[0]) == len(seen[1]) == 50
    assert not set(seen[0].tolist()) & set(seen[1].tolist())
    # a new epoch draws a new permutation
    batches = DeviceBatches(x, y, batch_size=5, shuffle=True, seed=7)
    first, second = (torch.cat([b[1] for b in batches]) for _ in range(2))
    assert not torch.equal(first, second)


def test_packed_members_each_take_their_own_seeds_batches_and_resume_them():
    x, y = torch.arange(64).float().view(32, 2), torch.arange(32)

    def own(seed):
        return DeviceBatches(x, y, batch_size=4, shuffle=True, seed=seed)

    packed = MemberBatches([own(0), own(1), own(2)])
    assert len(packed) == 8 and packed.batch_size == 4 and len(packed.dataset) == 32
    for _ in range(2):  # two epochs
        stacked = list(packed)
        for k, seed in enumerate((0, 1, 2)):
            alone = own(seed)
            alone.epoch = packed.members[k].epoch - 1  # the same epoch's permutation
            for (xs, ys), (xa, ya) in zip(stacked, alone, strict=True):
                assert torch.equal(xs[k], xa) and torch.equal(ys[k], ya)
    # a checkpoint mid-epoch: the resumed members go on with the batches they would have seen
    it = iter(packed)
    next(it), next(it), next(it)
    state = packed.state_dict()
    rest = [b[1] for b in it]
    resumed = MemberBatches([own(0), own(1), own(2)])
    resumed.load_state_dict(state)
    assert all(torch.equal(a, b[1]) for a, b in zip(rest, resumed, strict=True))


def test_eval_batches_cover_everything_once():
    x = torch.arange(23).float()
    got = torch.cat([b[0] for b in DeviceBatches(x, x.long(), 10, shuffle=False)])
    assert torch.equal(got, x)


def test_placement_is_checked_and_auto_keeps_data_under_half_the_free_memory(data_dir):
    from scalinglab.data.tensors import fits, free_bytes

    with pytest.raises(ConfigError, match="data.placement must be one of"):
        MNIST1D(data_dir=str(data_dir), placement="gpu")
    assert fits(10**9, None) and free_bytes(torch.device("cpu")) is None  # the CPU: in place
    assert fits(4 * 2**30, 10 * 2**30)        # 4 GiB of data, 10 GiB free: on the GPU
    assert not fits(6 * 2**30, 10 * 2**30)    # over half: it stays in host memory
    assert not fits(5 * 2**30, 10 * 2**30)    # exactly half is not under half


def test_host_placement_streams_the_same_batches_to_the_device():
    # "meta" stands in for a GPU: the host-resident iterator must copy every batch there,
    # drawing exactly the batches the device-resident one draws.
    x, y = torch.arange(64.0).view(32, 2), torch.arange(32)
    on_device = list(DeviceBatches(x, y, 8, True, seed=3))
    streamed = list(DeviceBatches(x, y, 8, True, seed=3, device=torch.device("meta")))
    assert len(streamed) == len(on_device) == 4
    assert all(bx.device.type == "meta" and by.device.type == "meta" for bx, by in streamed)
    assert [tuple(bx.shape) for bx, _ in streamed] == [tuple(bx.shape) for bx, _ in on_device]
    host = [bx for bx, _ in DeviceBatches(x, y, 8, True, seed=3, device=torch.device("cpu"))]
    assert all(torch.equal(a, b) for a, (b, _) in zip(host, on_device, strict=True))
