"""Network.save / Network.load: exact round trips, atomic writes, hostile files refused."""

from __future__ import annotations

import copy
import io
import json
import os
import pathlib
import zipfile

import numpy as np
import pytest

import densa
from densa import persistence
from densa.persistence import ModelFileError

OPTIMIZERS = {
    "sgd": lambda: densa.SGD(lr=0.05, momentum=0.9, nesterov=True, weight_decay=1e-4),
    "adam": lambda: densa.Adam(lr=0.01, betas=(0.8, 0.99), eps=1e-7, weight_decay=1e-3),
}


def _data(n: int = 96):
    rng = np.random.default_rng(7)
    X = rng.standard_normal((n, 3))
    y = ((X[:, 0] * X[:, 1] > 0) + (X[:, 2] > 0.5)).astype(np.int64)  # 3 classes
    return X, y


def _net(dtype: str = "float64", backend: str = "native", seed: int | None = 3):
    layers = [
        densa.Dense(3, 9, "tanh"),
        densa.Dense(9, 5, "relu", init="he_normal"),
        densa.Dense(5, 3, "identity"),
    ]
    return densa.Network(
        layers, loss="softmax_cross_entropy", dtype=dtype, backend=backend, seed=seed
    )


def _trained(dtype="float64", backend="native", optimizer="adam", epochs=3):
    X, y = _data()
    net = _net(dtype, backend)
    net.fit(
        X,
        y,
        epochs=epochs,
        batch_size=16,
        optimizer=OPTIMIZERS[optimizer](),
        validation_split=0.25,
        progress=False,
    )
    return net


def _params(net):
    return [a for layer in net.layers for a in (layer.W, layer.b)]


def _state(net):
    opt = net.optimizer
    return [a for per_layer in opt.state_W + opt.state_b for a in per_layer]


# ----- exact round trips ------------------------------------------------------------------
@pytest.mark.parametrize("optimizer", sorted(OPTIMIZERS))
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_round_trip_is_exact_after_training(tmp_path, dtype, optimizer):
    net = _trained(dtype, optimizer=optimizer)
    path = tmp_path / "model.npz"
    net.save(path)
    back = densa.Network.load(path)

    X, _ = _data()
    assert back.dtype == net.dtype
    assert back.loss == net.loss
    assert back.backend == net.backend
    assert [repr(a) for a in back.layers] == [repr(a) for a in net.layers]
    assert [a.init for a in back.layers] == [a.init for a in net.layers]
    for a, b in zip(_params(back), _params(net)):
        assert a.dtype == b.dtype
        assert a.flags.c_contiguous
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(back.predict(X), net.predict(X))
    assert type(back.optimizer) is type(net.optimizer)
    assert back.optimizer.hyper() == net.optimizer.hyper()
    assert int(back.optimizer.step[0]) == int(net.optimizer.step[0])
    assert len(_state(back)) == len(_state(net)) > 0
    for a, b in zip(_state(back), _state(net)):
        np.testing.assert_array_equal(a, b)
    assert back.history.as_dict() == net.history.as_dict()
    assert back.seed == net.seed
    assert back.check_finite == net.check_finite


@pytest.mark.parametrize("optimizer", sorted(OPTIMIZERS))
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("backend", ["reference", "native"])
def test_training_continues_after_load_as_without_saving(tmp_path, backend, dtype, optimizer):
    # Optimizer state, Adam's step and the shuffling generator all travel with the file,
    # so two more epochs after load are the two epochs that would have followed anyway.
    X, y = _data()
    net = _trained(dtype, backend, optimizer)
    net.save(tmp_path / "m.npz")
    back = densa.Network.load(tmp_path / "m.npz")
    net.fit(X, y, epochs=2, batch_size=16, progress=False)
    back.fit(X, y, epochs=2, batch_size=16, progress=False)
    assert int(back.optimizer.step[0]) == int(net.optimizer.step[0])
    if backend == "native" and optimizer == "adam":
        # The native fused Adam update rounds differently depending on the 32-byte
        # alignment of the parameter buffers (vector body vs scalar tail), which no two
        # allocations share: the same holds for copy.deepcopy (checked below), so it is
        # the kernel, not the file. A few ulp after 2 epochs.
        twin = copy.deepcopy(_trained(dtype, backend, optimizer))
        twin.fit(X, y, epochs=2, batch_size=16, progress=False)
        rtol = 1e-5 if dtype == "float32" else 1e-12
        for a, b, c in zip(_params(back), _params(net), _params(twin)):
            np.testing.assert_allclose(a, b, rtol=rtol, atol=rtol)
            np.testing.assert_allclose(c, b, rtol=rtol, atol=rtol)
    else:
        for a, b in zip(_params(back), _params(net)):
            np.testing.assert_array_equal(a, b)
        assert back.history.loss == net.history.loss


def test_untrained_network_round_trips_without_optimizer_or_history(tmp_path):
    net = _net("float32", "reference", seed=None)
    net.save(tmp_path / "fresh.npz")
    back = densa.Network.load(tmp_path / "fresh.npz")
    assert back.optimizer is None
    assert back.history is None
    assert back.seed is None
    assert back.backend == "reference"
    assert back.dtype == np.float32
    for a, b in zip(_params(back), _params(net)):
        np.testing.assert_array_equal(a, b)
    # The generator state came from the file, not from a new seed.
    assert np.array_equal(back.rng.permutation(50), net.rng.permutation(50))


def test_file_is_plain_npz_with_json_meta_as_documented(tmp_path):
    net = _trained("float32", "native", "sgd")
    net.save(tmp_path / "m.npz")
    with np.load(tmp_path / "m.npz", allow_pickle=False) as npz:
        names = set(npz.files)
        meta = json.loads(npz["meta"].tobytes().decode("utf-8"))
        assert npz["meta"].dtype == np.uint8
        assert npz["W1"].shape == (5, 9)
        assert npz["W1"].dtype == np.float32
    assert meta["format"] == "densa.network"
    assert meta["version"] == 1  # no l2: the version every densa reads
    assert meta["layers"][1] == {"n_in": 9, "n_out": 5, "activation": "relu", "init": "he_normal"}
    assert meta["optimizer"]["kind"] == "sgd"
    assert meta["optimizer"]["n_state"] == 1
    assert meta["optimizer"]["hyper"]["nesterov"] is True
    expected = {"meta", *(f"{p}{i}" for i in range(3) for p in "Wb")}
    expected |= {f"opt_{p}{i}_0" for i in range(3) for p in "Wb"}
    expected |= {f"history_{k}" for k in ("loss", "val_loss", "val_accuracy", "seconds")}
    assert names == expected


def test_writes_exactly_the_path_given_and_accepts_path_like(tmp_path):
    net = _net()
    net.save(str(tmp_path / "model"))  # no .npz appended, unlike np.savez
    net.save(pathlib.PurePath(tmp_path / "model.bin"))
    assert sorted(os.listdir(tmp_path)) == ["model", "model.bin"]
    np.testing.assert_array_equal(
        densa.Network.load(tmp_path / "model").layers[0].W, net.layers[0].W
    )
    with pytest.raises(TypeError, match=r"path must be a str or os\.PathLike"):
        net.save(42)


def test_saved_file_gets_the_umask_permissions(tmp_path):
    old = os.umask(0o022)
    try:
        _net().save(tmp_path / "m.npz")
    finally:
        os.umask(old)
    assert os.stat(tmp_path / "m.npz").st_mode & 0o777 == 0o644


def test_overwrite_replaces_the_previous_model(tmp_path):
    path = tmp_path / "m.npz"
    _net(seed=1).save(path)
    second = _net(seed=2)
    second.save(path)
    np.testing.assert_array_equal(densa.Network.load(path).layers[0].W, second.layers[0].W)
    assert os.listdir(tmp_path) == ["m.npz"]


# ----- atomicity --------------------------------------------------------------------------
def _partial_savez(fh, **arrays):
    fh.write(b"PK\x03\x04 half an archive")
    raise OSError(28, "No space left on device")


def _interrupted_savez(fh, **arrays):
    fh.write(b"PK\x03\x04")
    raise KeyboardInterrupt


def _failing_replace(src, dst):
    raise PermissionError(13, "Permission denied", dst)


def _failing_fsync(fd):
    raise OSError(5, "Input/output error")


@pytest.mark.parametrize(
    ("target", "attr", "replacement", "exc"),
    [
        (np, "savez", _partial_savez, OSError),
        (np, "savez", _interrupted_savez, KeyboardInterrupt),
        (os, "replace", _failing_replace, PermissionError),
        (os, "fsync", _failing_fsync, OSError),
    ],
    ids=["savez-disk-full", "savez-ctrl-c", "replace-denied", "fsync-error"],
)
def test_failed_save_leaves_previous_file_and_no_temporary(
    tmp_path, monkeypatch, target, attr, replacement, exc
):
    path = tmp_path / "m.npz"
    first = _net(seed=1)
    first.save(path)
    before = path.read_bytes()
    monkeypatch.setattr(target, attr, replacement)
    with pytest.raises(exc):
        _trained().save(path)
    monkeypatch.undo()
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["m.npz"]
    np.testing.assert_array_equal(densa.Network.load(path).layers[0].W, first.layers[0].W)


def test_save_into_missing_directory_raises_and_creates_nothing(tmp_path):
    with pytest.raises(FileNotFoundError):
        _net().save(tmp_path / "absent" / "m.npz")
    assert os.listdir(tmp_path) == []


# ----- files that are not models ------------------------------------------------------------
def _members(path) -> dict:
    with np.load(path, allow_pickle=False) as npz:
        return {k: npz[k] for k in npz.files}


def _write(path, members: dict) -> None:
    with open(path, "wb") as fh:
        np.savez(fh, **members)


def _meta(members: dict) -> dict:
    return json.loads(members["meta"].tobytes().decode())


def _with_meta(members: dict, meta: dict) -> dict:
    out = dict(members)
    out["meta"] = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
    return out


@pytest.fixture
def saved(tmp_path):
    path = tmp_path / "good.npz"
    _trained("float64", "native", "adam", epochs=1).save(path)
    return path


def _assert_refused(path, match: str) -> None:
    with pytest.raises(ModelFileError, match=match) as info:
        densa.Network.load(path)
    assert str(path) in str(info.value)
    assert "not a valid densa model file" in str(info.value)


def test_model_file_error_is_a_value_error():
    assert issubclass(densa.ModelFileError, ValueError)


def test_empty_file(tmp_path):
    (tmp_path / "e.npz").write_bytes(b"")
    _assert_refused(tmp_path / "e.npz", "empty")


def test_random_bytes(tmp_path):
    (tmp_path / "r.npz").write_bytes(np.random.default_rng(0).bytes(4096))
    _assert_refused(tmp_path / "r.npz", "not a readable .npz archive")


@pytest.mark.parametrize("fraction", [0.02, 0.3, 0.6, 0.97])
def test_truncated_file(saved, fraction):
    data = saved.read_bytes()
    saved.write_bytes(data[: int(len(data) * fraction)])
    _assert_refused(saved, "not a readable .npz archive|cannot be read")


def test_every_bit_flip_is_refused_or_harmless(saved):
    # Flipping a byte anywhere must give ModelFileError, or (for bytes no reader checks,
    # such as zip timestamps) a network identical to the original; never another error.
    good = densa.Network.load(saved)
    X, _ = _data()
    expected = good.predict(X)
    data = bytearray(saved.read_bytes())
    refused = harmless = 0
    for pos in range(0, len(data), max(1, len(data) // 300)):
        flipped = bytearray(data)
        flipped[pos] ^= 0x5A
        saved.write_bytes(bytes(flipped))
        try:
            net = densa.Network.load(saved)
        except ModelFileError:
            refused += 1
            continue
        np.testing.assert_array_equal(net.predict(X), expected, err_msg=f"byte {pos}")
        harmless += 1
    assert refused > 0.8 * (refused + harmless)


def test_pickled_object_array_is_refused_without_unpickling(saved, tmp_path):
    members = _members(saved)
    members["W0"] = np.array([{"evil": "payload"}], dtype=object)
    path = tmp_path / "evil.npz"
    with open(path, "wb") as fh:
        np.savez(fh, **members)  # np.savez pickles object arrays
    _assert_refused(path, "dtype object")


def test_meta_as_object_array_is_refused(saved, tmp_path):
    members = _members(saved)
    members["meta"] = np.array([_meta(members)], dtype=object)
    path = tmp_path / "evil.npz"
    _write(path, members)
    _assert_refused(path, "dtype object")


def test_wrong_format_version(saved):
    members = _members(saved)
    meta = _meta(members)
    meta["version"] = 3
    _write(saved, _with_meta(members, meta))
    _assert_refused(saved, "format version 3 is not supported.*newer densa")


@pytest.mark.parametrize("kind", ["sgd", "adam"])
def test_l2_is_saved_as_version_2_and_read_back(tmp_path, kind):
    X, y = np.random.default_rng(0).normal(size=(40, 4)), np.arange(40) % 3
    net = densa.Network(
        [densa.Dense(4, 6, "relu"), densa.Dense(6, 3, "identity")],
        loss="softmax_cross_entropy",
        seed=0,
    )
    opt = densa.SGD(lr=0.1, momentum=0.9, l2=0.5) if kind == "sgd" else densa.Adam(l2=0.5)
    net.fit(X, y, epochs=2, batch_size=16, optimizer=opt, progress=False)
    net.save(tmp_path / "l2.npz")
    members = _members(tmp_path / "l2.npz")
    assert _meta(members)["version"] == 2  # a densa from before l2 refuses it
    assert _meta(members)["optimizer"]["hyper"]["l2"] == 0.5
    back = densa.Network.load(tmp_path / "l2.npz")
    assert back.optimizer.l2 == 0.5
    back.fit(X, y, epochs=1, batch_size=16, progress=False)
    net.fit(X, y, epochs=1, batch_size=16, progress=False)
    for a, b in zip(back.layers, net.layers):
        np.testing.assert_array_equal(a.W, b.W)
    # In a version 1 file, l2 is an unknown field.
    meta = _meta(members)
    meta["version"] = 1
    _write(tmp_path / "v1.npz", _with_meta(members, meta))
    _assert_refused(tmp_path / "v1.npz", "unknown field.*l2")


def test_not_a_densa_archive(tmp_path):
    path = tmp_path / "other.npz"
    _write(path, {"x": np.zeros(3)})
    _assert_refused(path, "unexpected member")
    _write(path, {"W0": np.zeros((2, 2))})
    _assert_refused(path, "missing the 'meta' array")


@pytest.mark.parametrize(
    ("edit", "match"),
    [
        (lambda m: m["layers"][1].update(n_in=4), "do not chain.*layers\\[0\\] outputs 9"),
        (lambda m: m["layers"][0].update(n_in=10**12), "n_in = 1000000000000 is outside"),
        (lambda m: m["layers"][0].update(activation="swish"), "activation = 'swish'"),
        (lambda m: m["layers"].clear(), "1 to 10000 layers"),
        (lambda m: m.update(dtype="float16"), "dtype = 'float16' is not one of"),
        (lambda m: m.update(loss=3), "loss must be a string"),
        (lambda m: m.update(check_finite="yes"), "check_finite must be true or false"),
        (lambda m: m.pop("backend"), "lacks the field 'backend'"),
        (lambda m: m.update(format="keras"), "format is 'keras'"),
        (lambda m: m["optimizer"]["hyper"].update(lr=-1.0), "lr must be a finite number > 0"),
        (lambda m: m["optimizer"]["hyper"].pop("eps"), "lacks the field 'eps'"),
        (lambda m: m["optimizer"].update(n_state=1), "n_state = 1, but adam keeps 2"),
        (lambda m: m["rng"].update(state="-5"), "decimal 128-bit integer"),
        (lambda m: m["history"].update(best_epoch=99), "best_epoch = 99"),
        (lambda m: m.update(comment="hi"), "meta has unknown field\\(s\\) 'comment'"),
        (lambda m: m["optimizer"]["hyper"].update(momentum=0.9), "hyper has unknown.*'momentum'"),
        (lambda m: m["optimizer"].update(note=1), "meta.optimizer has unknown.*'note'"),
        (lambda m: m["layers"][0].update(dropout=0.5), "layers\\[0\\] has unknown.*'dropout'"),
        (lambda m: m["rng"].update(seed=1), "meta.rng has unknown.*'seed'"),
        (lambda m: m["history"].update(loss=[]), "meta.history has unknown.*'loss'"),
        (lambda m: m.update(densa_version=1), "densa_version must be a string, got int 1"),
        (lambda m: m.update(feature_names=["a", "b"]), "feature_names must be a list of 3"),
        (lambda m: m.update(feature_names=["a", "b", 3]), "feature_names must be a list of 3"),
        (lambda m: m.update(feature_names=["a", "b", "a"]), "3 distinct strings"),
        (lambda m: m.update(feature_names="abc"), "feature_names must be a list of 3"),
    ],
    ids=[
        "no-chain",
        "absurd-n_in",
        "activation",
        "no-layers",
        "dtype",
        "loss-type",
        "check_finite",
        "missing-field",
        "format",
        "bad-lr",
        "missing-hyper",
        "n_state",
        "rng",
        "best_epoch",
        "unknown-field",
        "unknown-hyper",
        "unknown-optimizer-field",
        "unknown-layer-field",
        "unknown-rng-field",
        "unknown-history-field",
        "densa_version-int",
        "feature_names-length",
        "feature_names-type",
        "feature_names-twice",
        "feature_names-str",
    ],
)
def test_bad_meta_fields(saved, edit, match):
    members = _members(saved)
    meta = _meta(members)
    edit(meta)
    _write(saved, _with_meta(members, meta))
    _assert_refused(saved, match)


def test_meta_not_json(saved):
    members = _members(saved)
    members["meta"] = np.frombuffer(b"\xff{not json", dtype=np.uint8)
    _write(saved, members)
    _assert_refused(saved, "meta is not UTF-8 JSON")


@pytest.mark.parametrize(
    ("edit", "match"),
    [
        (lambda a: a.update(W1=np.zeros((9, 5))), "'W1' has shape \\(9, 5\\) but the archit"),
        (lambda a: a.update(b2=np.zeros(3, dtype=np.float32)), "'b2' has dtype float32"),
        (lambda a: a.pop("W2"), "missing array 'W2'"),
        (lambda a: a.pop("opt_b1_1"), "missing array 'opt_b1_1'"),
        (lambda a: a.update(W3=np.zeros((1, 3))), "unexpected array\\(s\\) W3"),
        (lambda a: a.update(W0=np.full((9, 3), np.nan)), "'W0' contains NaN"),
        (lambda a: a.update(W0=np.zeros((9, 3), dtype=np.int64)), "'W0' has dtype int64"),
        (lambda a: a.update(history_seconds=np.zeros(7)), "history_seconds has 7 entries"),
        (
            lambda a: a["opt_b1_1"].__setitem__(0, -1e-8),
            "'opt_b1_1' \\(Adam's second moment v\\) holds negative values",
        ),
    ],
    ids=["shape", "dtype", "missing-W", "missing-state", "extra", "nan", "int", "history", "v<0"],
)
def test_bad_arrays(saved, edit, match):
    members = _members(saved)
    edit(members)
    _write(saved, members)
    _assert_refused(saved, match)


def _npy_with_header(shape, descr="<f8", payload=b"\0" * 64) -> bytes:
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        buf, {"descr": descr, "fortran_order": False, "shape": shape}
    )
    return buf.getvalue() + payload


@pytest.mark.parametrize("shape", [(10**9, 10**9), (9, 3 + 1), (2**40,)])
def test_declared_size_must_match_stored_bytes(saved, tmp_path, shape):
    # A header may claim any shape; it is compared with the bytes actually stored before
    # anything is allocated, so a 8e18-byte claim costs nothing.
    members = _members(saved)
    path = tmp_path / "liar.npz"
    with zipfile.ZipFile(path, "w") as zf:
        for name, arr in members.items():
            if name == "W0":
                zf.writestr("W0.npy", _npy_with_header(shape, payload=arr.tobytes()))
            else:
                buf = io.BytesIO()
                np.lib.format.write_array(buf, arr, allow_pickle=False)
                zf.writestr(f"{name}.npy", buf.getvalue())
    _assert_refused(path, "W0")


def test_zip_bomb_is_refused_before_decompressing(saved, tmp_path):
    # 2**24 float64 zeros (128 MiB) deflate to about 130 KB; the architecture says so too,
    # so only the expansion ratio gives it away.
    members = _members(saved)
    meta = _meta(members)
    meta["layers"] = [{"n_in": 2**12, "n_out": 2**12, "activation": "relu", "init": "he_normal"}]
    meta["optimizer"] = meta["history"] = None
    path = tmp_path / "bomb.npz"
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        header, {"descr": "<f8", "fortran_order": False, "shape": (2**12, 2**12)}
    )
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("meta.npy", _npy_bytes(_with_meta(members, meta)["meta"]))
        with zf.open("W0.npy", "w", force_zip64=True) as fp:
            fp.write(header.getvalue())
            chunk = bytes(1 << 20)
            for _ in range(128):
                fp.write(chunk)
        zf.writestr("b0.npy", _npy_bytes(np.zeros(2**12)))
    assert path.stat().st_size < 2_000_000
    _assert_refused(path, "'W0' would expand from .* bytes \\(a zip bomb\\?\\)")


def _npy_bytes(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.lib.format.write_array(buf, arr, allow_pickle=False)
    return buf.getvalue()


def test_oversized_meta_is_refused_before_reading(saved):
    members = _members(saved)
    members["meta"] = np.zeros(persistence._MAX_META_BYTES + 1, dtype=np.uint8)
    _write(saved, members)
    _assert_refused(saved, "'meta' must be 1-D uint8 of at most")


def test_missing_file_and_directory_raise_os_errors(tmp_path):
    with pytest.raises(FileNotFoundError):
        densa.Network.load(tmp_path / "absent.npz")
    with pytest.raises(IsADirectoryError):
        densa.Network.load(tmp_path)


# ----- feature names, and saves that load would refuse --------------------------------------
def test_feature_names_round_trip_and_are_optional(tmp_path):
    net = _net()
    net.save(tmp_path / "plain.npz")
    assert "feature_names" not in _meta(_members(tmp_path / "plain.npz"))
    assert densa.Network.load(tmp_path / "plain.npz").feature_names is None

    net.feature_names = ("a", "b", "c")
    net.save(tmp_path / "named.npz")
    assert _meta(_members(tmp_path / "named.npz"))["feature_names"] == ["a", "b", "c"]
    back = densa.Network.load(tmp_path / "named.npz")
    assert back.feature_names == ["a", "b", "c"]
    back.save(tmp_path / "again.npz")  # load -> save keeps them
    assert densa.Network.load(tmp_path / "again.npz").feature_names == ["a", "b", "c"]
    assert copy.deepcopy(back).feature_names == ["a", "b", "c"]


@pytest.mark.parametrize(
    ("names", "match"),
    [
        (["a", "b"], "load would refuse it: meta.feature_names must be a list of 3 distinct"),
        (["a", "a", "b"], "3 distinct strings"),
        ("abc", "net.feature_names must be None or a list of strings, got 'abc'"),
        ([1, 2, 3], "net.feature_names must be None or a list of strings"),
    ],
)
def test_save_refuses_bad_feature_names(tmp_path, names, match):
    net = _net()
    net.feature_names = names
    with pytest.raises(ValueError, match=match):
        net.save(tmp_path / "m.npz")
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("given", ["sub", "sub/", ".", "new/"])
def test_save_to_a_directory_names_the_path_given(tmp_path, monkeypatch, given):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "sub").mkdir()
    with pytest.raises(IsADirectoryError) as info:
        _net().save(given)
    assert info.value.filename == given
    assert ".tmp" not in str(info.value)
    assert sorted(os.listdir(tmp_path)) == ["sub"]
    assert os.listdir(tmp_path / "sub") == []


def test_save_refuses_layers_that_no_longer_chain(tmp_path):
    net, other = _net(), _net()
    net.layers[1] = other.layers[0]  # 3 -> 9 after 3 -> 9: sizes no longer chain
    with pytest.raises(
        ValueError,
        match=r"do not chain: net.layers\[0\] outputs 9 values but net.layers\[1\] "
        r"expects 3 inputs; nothing was written",
    ):
        net.save(tmp_path / "m.npz")
    assert os.listdir(tmp_path) == []


def test_save_refuses_a_layer_of_another_dtype(tmp_path):
    net = _net("float32")
    net.layers[2] = _net("float64").layers[2]
    with pytest.raises(ValueError, match=r"'W2' has dtype float64 but meta.dtype says float32"):
        net.save(tmp_path / "m.npz")
    assert os.listdir(tmp_path) == []


# ----- boundaries found by mutation testing -----------------------------------------------------
def test_adam_second_moments_that_are_exactly_zero_save_and_load(tmp_path):
    """Guards the v >= 0 rule: a weight that never had a gradient keeps v = 0, which is valid."""
    X, y = _data()
    X[:, 1] = 0.0  # input 1 is always zero: its weights get dW = 0, so m = v = 0 stay
    net = _net()
    net.fit(X, y, epochs=2, batch_size=16, optimizer=densa.Adam(lr=0.01), progress=False)
    v = net.optimizer.state_W[0][1]
    assert np.all(v[:, 1] == 0)  # the premise
    assert np.all(v[:, [0, 2]] > 0)
    net.save(tmp_path / "m.npz")
    back = densa.Network.load(tmp_path / "m.npz")
    for a, b in zip(_state(back), _state(net)):
        np.testing.assert_array_equal(a, b)


def test_best_epoch_equal_to_the_number_of_epochs_is_refused(saved):
    """Guards the upper bound of meta.history.best_epoch (0-based: one past the last epoch)."""
    members = _members(saved)
    meta = _meta(members)
    epochs = len(members["history_loss"])
    meta["history"]["best_epoch"] = epochs - 1  # the last epoch: accepted
    _write(saved, _with_meta(members, meta))
    assert densa.Network.load(saved).history.best_epoch == epochs - 1
    meta["history"]["best_epoch"] = epochs
    _write(saved, _with_meta(members, meta))
    _assert_refused(saved, f"best_epoch = {epochs} is not an epoch")


def test_history_val_accuracy_of_another_length_than_val_loss_is_refused(saved):
    """Guards the check that val_accuracy is empty or as long as val_loss."""
    members = _members(saved)
    assert len(members["history_val_loss"]) == 1  # the premise: one epoch with validation
    members["history_val_accuracy"] = np.zeros(2)
    _write(saved, members)
    _assert_refused(saved, "history_val_accuracy and history_val_loss differ in length")


def _rewrite_member(saved, path, name: str, npy: bytes) -> None:
    """``saved`` copied to ``path`` with member ``name`` replaced by the raw ``npy`` bytes."""
    with zipfile.ZipFile(saved) as src, zipfile.ZipFile(path, "w") as dst:
        for info in src.infolist():
            data = npy if info.filename == f"{name}.npy" else src.read(info)
            dst.writestr(info.filename, data)


def test_a_member_stored_in_fortran_order_is_refused(saved, tmp_path):
    """Guards docs/format.md's "Arrays are C-ordered": a Fortran-ordered member is refused."""
    W0 = _members(saved)["W0"]
    path = tmp_path / "fortran.npz"
    _rewrite_member(saved, path, "W0", _npy_bytes(np.asfortranarray(W0)))
    with zipfile.ZipFile(path) as zf, zf.open("W0.npy") as fp:  # the premise
        np.lib.format.read_magic(fp)
        assert np.lib.format.read_array_header_1_0(fp)[1] is True
    _assert_refused(path, "'W0' is stored in Fortran order")


def test_a_member_holding_more_bytes_than_its_header_declares_is_refused(saved, tmp_path):
    """Guards "the bytes stored equal the declared shape" for a member with trailing bytes."""
    W0 = _members(saved)["W0"]
    path = tmp_path / "padded.npz"
    _rewrite_member(saved, path, "W0", _npy_bytes(W0) + b"\0" * 8)
    _assert_refused(path, "'W0' declares shape \\(9, 3\\) of float64 \\(216 bytes\\) but holds 224")
