"""Model files: hostile ones never execute code, and concurrent saves leave one
complete model. tests/test_persistence.py covers atomic writes and damaged files;
this adds what it does not: payloads that do run code when unpickled (checked), and
two threads saving to one path.
"""

from __future__ import annotations

import os
import pickle
import threading
import zipfile

import numpy as np
import pytest

import densa

MARKER = "densa-robustness-pwned"


class _Payload:
    """Unpickling this creates a directory: proof that code from the file ran."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self):
        return (os.mkdir, (self.path,))


def _net():
    layers = [densa.Dense(3, 4, "tanh"), densa.Dense(4, 2, "identity")]
    return densa.Network(layers, loss="softmax_cross_entropy", seed=0)


def _members(path) -> dict:
    with np.load(path, allow_pickle=False) as npz:
        return {k: npz[k] for k in npz.files}


@pytest.mark.parametrize("member", ["W0", "meta", "opt_W0_0", "history_loss", "extra"])
def test_a_pickled_member_is_refused_and_never_unpickled(tmp_path, member):
    good = tmp_path / "good.npz"
    net = _net()
    net.fit(np.zeros((4, 3)), [0, 1, 0, 1], epochs=1, optimizer="sgd", progress=False)
    net.save(good)
    members = _members(good)
    marker = tmp_path / MARKER
    members[member] = np.array([_Payload(str(marker))], dtype=object)
    evil = tmp_path / "evil.npz"
    with open(evil, "wb") as fh:
        np.savez(fh, **members)  # object arrays are pickled into the archive
    with pytest.raises(densa.ModelFileError):
        densa.Network.load(evil)
    assert not marker.exists(), "loading ran code from the file"
    # The payload is live: a reader that unpickles does run it.
    with np.load(evil, allow_pickle=True) as npz:
        npz[member]
    assert marker.exists()


def test_a_plain_pickle_is_refused_and_never_unpickled(tmp_path):
    marker = tmp_path / MARKER
    evil = tmp_path / "model.npz"
    evil.write_bytes(pickle.dumps(_Payload(str(marker))))
    with pytest.raises(densa.ModelFileError, match=r"not a readable \.npz archive"):
        densa.Network.load(evil)
    # The same bytes inside a zip member named like an array.
    with zipfile.ZipFile(evil, "w") as zf:
        zf.writestr("meta.npy", pickle.dumps(_Payload(str(marker))))
    with pytest.raises(densa.ModelFileError):
        densa.Network.load(evil)
    assert not marker.exists(), "loading ran code from the file"


def test_saves_racing_from_two_threads_leave_one_complete_model(tmp_path):
    # Each save writes its own temporary file and renames it over the destination, so
    # whichever rename comes last wins and the file is always one complete model.
    path = tmp_path / "m.npz"
    nets = [_net(), _net()]
    for i, net in enumerate(nets):
        net.layers[0].W = np.full((4, 3), float(i + 1))
    errors = []

    def save_many(net):
        try:
            for _ in range(20):
                net.save(path)
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=save_many, args=(n,)) for n in nets]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert errors == []
    loaded = densa.Network.load(path)
    assert float(loaded.layers[0].W[0, 0]) in (1.0, 2.0)
    np.testing.assert_array_equal(loaded.layers[0].W, loaded.layers[0].W[0, 0])
    assert os.listdir(tmp_path) == ["m.npz"]  # no temporary left behind


def test_save_refuses_what_load_would_refuse_and_writes_nothing(tmp_path):
    net = _net()
    path = tmp_path / "m.npz"
    net.layers[1].b[0] = np.nan
    with pytest.raises(ValueError, match=r"array 'b1' contains NaN or inf.*nothing was written"):
        net.save(path)
    assert list(tmp_path.iterdir()) == []


def test_a_failed_save_names_the_destination(tmp_path):
    path = tmp_path / "missing-dir" / "m.npz"
    with pytest.raises(FileNotFoundError) as info:
        _net().save(path)
    assert info.value.filename == str(path)
    assert ".tmp" not in str(info.value)


@pytest.mark.parametrize(
    ("edit", "fragment"),
    [
        (lambda meta: {**meta, "x": "NEST"}, "nests JSON arrays or objects too deeply"),
        (
            lambda meta: {
                **meta,
                "optimizer": {
                    **meta["optimizer"],
                    "hyper": {**meta["optimizer"]["hyper"], "lr": 10**400},
                },
            },
            "lr must be a finite number > 0",
        ),
    ],
    ids=["deep-nesting", "huge-integer-lr"],
)
def test_hostile_meta_raises_model_file_error(tmp_path, edit, fragment):
    import json

    net = _net()
    net.fit(np.zeros((4, 3)), np.array([0, 1, 0, 1]), epochs=1, progress=False)
    good = tmp_path / "good.npz"
    net.save(good)
    members = _members(good)
    meta = json.loads(members["meta"].tobytes().decode())
    text = json.dumps(edit(meta)).replace('"NEST"', "[" * 100_000 + "]" * 100_000)
    members["meta"] = np.frombuffer(text.encode(), dtype=np.uint8)
    bad = tmp_path / "bad.npz"
    np.savez(bad, **members)
    with pytest.raises(densa.ModelFileError, match=fragment):
        densa.Network.load(bad)
