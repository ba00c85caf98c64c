"""The command line: the demo end to end, train -> predict round trips, one-line errors."""

from __future__ import annotations

import csv
import io
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import densa
from densa import datasets
from helpers import run_cli as run

# ``run`` swaps sys.stdout for a StringIO. densa.native is imported first (by helpers),
# under pytest's own capture, because an editable development install rebuilds the
# extension on its first import through a subprocess that needs a real file descriptor.


def run_process(*args, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "densa", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def densa_lines(stderr: str) -> list[str]:
    # An editable development install may log its own rebuild on import; only densa's
    # lines count.
    return [line for line in stderr.splitlines() if line.startswith("densa")]


def number_after(label: str, text: str) -> float:
    match = re.search(re.escape(label) + r"\s*([-+0-9.eE]+)", text)
    assert match, f"{label!r} not found in:\n{text}"
    return float(match.group(1))


# ----- demo --------------------------------------------------------------------------------
def test_demo_runs_end_to_end_and_learns_the_spirals():
    # `python -m densa` with no arguments: the first command the README gives.
    proc = run_process("--no-progress")
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert "Traceback" not in proc.stderr
    assert number_after("final accuracy:", out) >= 0.98
    # Same seed, same arithmetic: in float64 the two backends end within rounding.
    assert number_after("max parameter difference native vs reference:", out) < 1e-9
    assert number_after("time native:", out) > 0
    assert number_after("time reference:", out) > 0
    epochs = re.findall(r"^epoch\s+\d+/40\s+loss ([0-9.]+)\s+accuracy ([0-9.]+)", out, re.M)
    assert len(epochs) == 40
    assert float(epochs[-1][0]) < float(epochs[0][0]) / 10


def test_demo_subcommand_takes_options():
    code, out, _ = run(
        ["demo", "--epochs", "2", "--samples", "200", "--dtype", "float32", "--no-progress"]
    )
    assert code == 0
    assert len(re.findall(r"^epoch\s+\d+/2 ", out, re.M)) == 2
    assert "200 points" in out
    assert "float32" in out


def test_console_script_is_installed():
    script = Path(sys.executable).with_name("densa")
    if not script.exists():
        pytest.skip("no densa console script next to this interpreter")
    proc = subprocess.run(
        [str(script), "--version"], capture_output=True, text=True, timeout=60, check=False
    )
    assert proc.returncode == 0
    assert proc.stdout.strip() == f"densa {densa.__version__}"


# ----- train -> predict ---------------------------------------------------------------------
@pytest.fixture
def spiral_csv(tmp_path):
    X, y = datasets.spirals(240, seed=1)
    path = tmp_path / "spirals.csv"
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["x", "label", "z"])  # the target in the middle, on purpose
        for (a, b), c in zip(X, y):
            w.writerow([repr(float(a)), int(c), repr(float(b))])
    return path, X, y


def _read_csv(path_or_text) -> tuple[list[str], np.ndarray]:
    text = path_or_text.read_text() if isinstance(path_or_text, Path) else path_or_text
    rows = list(csv.reader(io.StringIO(text)))
    return rows[0], np.array(rows[1:], dtype=np.float64)


def test_train_then_predict_csv_matches_network_load_predict(tmp_path, spiral_csv):
    path, X, y = spiral_csv
    model, preds = tmp_path / "m.npz", tmp_path / "preds.csv"
    code, out, err = run(
        [
            "train",
            path,
            "--target",
            "label",
            "--hidden",
            "32,32",
            "--epochs",
            "25",
            "--batch-size",
            "8",
            "--lr",
            "0.01",
            "--out",
            model,
            "--no-progress",
        ]
    )
    assert code == 0, err
    assert "loss: softmax_cross_entropy (auto" in out
    net = densa.Network.load(model)
    assert [layer.n_out for layer in net.layers] == [32, 32, 2]
    assert net.loss == "softmax_cross_entropy"
    losses = [float(v) for v in re.findall(r"^epoch \d+/25\s+loss (\S+)", out, re.M)]
    assert len(losses) == 25
    assert losses[-1] < 0.5 * losses[0]

    code, out, err = run(["predict", model, path, "--target", "label", "--out", preds])
    assert code == 0, err
    names, table = _read_csv(preds)
    assert names == ["class", "p0", "p1"]
    np.testing.assert_array_equal(table[:, 1:], net.predict(X).astype(np.float64))
    np.testing.assert_array_equal(table[:, 0], net.predict_classes(X))
    # predict reports the score on the target column it was told to leave out (5 digits).
    accuracy = net.evaluate(X, y)["accuracy"]
    assert number_after("accuracy", out) == pytest.approx(accuracy, rel=1e-4)

    # To stdout, the predictions stay a clean CSV and the scores go to stderr.
    code, out, err = run(["predict", model, path, "--target", "label"])
    assert code == 0, err
    names, table = _read_csv(out)
    assert names == ["class", "p0", "p1"]
    assert table.shape == (len(X), 3)
    np.testing.assert_array_equal(table[:, 0], net.predict_classes(X))
    assert err.startswith("scores on label:")
    assert number_after("accuracy", err) == pytest.approx(accuracy, rel=1e-4)


def test_predict_to_stdout_without_target_column(tmp_path, spiral_csv):
    path, X, _ = spiral_csv
    model = tmp_path / "m.npz"
    assert (
        run(["train", path, "--target", "label", "--epochs", "1", "--out", model, "--no-progress"])[
            0
        ]
        == 0
    )
    features = tmp_path / "features.csv"
    features.write_text("x,z\n" + "".join(f"{float(a)!r},{float(b)!r}\n" for a, b in X))
    code, out, _ = run(["predict", model, features])
    assert code == 0
    names, table = _read_csv(out)
    assert names[0] == "class"
    np.testing.assert_array_equal(table[:, 1:], densa.Network.load(model).predict(X))


def test_train_then_predict_npy_regression(tmp_path):
    x, t = datasets.sine(120)
    data = tmp_path / "sine.npy"
    np.save(data, np.column_stack([x, t]))
    model, preds = tmp_path / "s.npz", tmp_path / "p.npy"
    code, out, err = run(
        [
            "train",
            data,
            "--hidden",
            "16",
            "--activation",
            "tanh",
            "--epochs",
            "60",
            "--lr",
            "0.02",
            "--dtype",
            "float64",
            "--out",
            model,
            "--no-progress",
        ]
    )
    assert code == 0, err
    assert "loss: mse (auto" in out
    net = densa.Network.load(model)
    assert net.dtype == np.float64
    assert net.layers[0].activation == "tanh"
    assert number_after("training set: loss", out) < 0.05  # sin has variance 0.5
    assert run(["predict", model, data, "--target", "1", "--out", preds])[0] == 0
    np.testing.assert_array_equal(np.load(preds), net.predict(x))


def test_train_npz_with_sgd_and_reference_backend(tmp_path):
    X, y = datasets.xor()
    data = tmp_path / "xor.npz"
    np.savez(data, X=np.repeat(X, 8, axis=0), y=np.repeat(y, 8))
    model = tmp_path / "xor_model.npz"
    code, _, err = run(
        [
            "train",
            data,
            "--hidden",
            "8",
            "--activation",
            "tanh",
            "--optimizer",
            "sgd",
            "--lr",
            "0.2",
            "--momentum",
            "0.9",
            "--epochs",
            "150",
            "--backend",
            "reference",
            "--batch-size",
            "4",
            "--out",
            model,
            "--no-progress",
        ]
    )
    assert code == 0, err
    net = densa.Network.load(model)
    assert net.backend == "reference"
    assert isinstance(net.optimizer, densa.SGD)
    assert net.optimizer.momentum == 0.9
    np.testing.assert_array_equal(net.predict_classes(X), y)


# ----- gradcheck and bench ---------------------------------------------------------------------
def test_gradcheck_prints_tables_for_every_loss_and_backend():
    code, out, _ = run(["gradcheck", "--sizes", "3,5,4", "--samples", "8"])
    assert code == 0
    assert out.count("gradient check:") == 6  # 3 losses x 2 backends
    for loss in ("mse", "softmax_cross_entropy", "binary_cross_entropy"):
        assert f"== {loss}: 3-5-4 tanh" in out
    assert out.rstrip().endswith("gradcheck: every tensor within tolerance")
    # float64: native and reference gradients agree to rounding.
    rel = [float(v) for v in re.findall(r"\(rel ([0-9.e+-]+)\)", out)]
    assert len(rel) == 3 * 2 * 3  # losses x layers x (dW, db, dx)
    assert max(rel) < 1e-12


def test_bench_times_both_backends():
    code, out, _ = run(["bench", "--size", "32", "--batch", "16", "--repeat", "2"])
    assert code == 0
    times = [float(v) for v in re.findall(r"^\s+(?:native|reference)\s+([0-9.]+) ms", out, re.M)]
    assert len(times) == 4
    assert all(t > 0 for t in times)
    assert len(re.findall(r"native speed-up: [0-9.]+x", out)) == 2


# ----- help and errors -------------------------------------------------------------------------
@pytest.mark.parametrize("command", ["demo", "train", "predict", "gradcheck", "bench"])
def test_help_for_every_command(command):
    code, out, _ = run([command, "--help"])
    assert code == 0
    assert out.startswith(f"usage: densa {command}")


def _garbage(tmp_path) -> Path:
    path = tmp_path / "garbage.bin"
    path.write_bytes(np.random.default_rng(0).bytes(2000))
    return path


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["train", "{tmp}/missing.csv"], "No such file or directory"),
        (["train", "{csv}", "--target", "nope"], "has no column 'nope'; its columns are: x, lab"),
        (["train", "{garbage}"], "neither UTF-8 CSV text nor a .npy/.npz file"),
        (["train", "{csv}", "--hidden", "64,x"], "argument --hidden: expected comma-separated"),
        (
            [
                "train",
                "{csv}",
                "--target",
                "label",
                "--loss",
                "binary_cross_entropy",
                "--target",
                "x",
            ],
            "needs targets that are 0 or 1",
        ),
        (["predict", "{garbage}", "{csv}"], "not a valid densa model file"),
        (["predict", "{tmp}/none.npz", "{csv}"], "No such file or directory"),
        (["frobnicate"], "invalid choice: 'frobnicate'"),
        (["gradcheck", "--sizes", "3"], "--sizes needs at least an input and an output"),
        (["demo", "--samples", "1"], "argument --samples: expected at least 2 points"),
        (
            ["predict", "{garbage}", "{csv}", "--out", "{tmp}/p.npz"],
            "predict writes a .npy array or CSV text",
        ),
        (["gradcheck", "--sizes", "100000000,100000000"], "error: out of memory"),
    ],
    ids=[
        "missing-file",
        "unknown-column",
        "garbage-data",
        "bad-hidden",
        "bad-bce-target",
        "garbage-model",
        "missing-model",
        "unknown-command",
        "gradcheck-sizes",
        "demo-one-point",
        "predict-npz-out",
        "out-of-memory",
    ],
)
def test_bad_input_gives_one_line_and_nonzero_exit(tmp_path, spiral_csv, argv, message):
    names = {"tmp": tmp_path, "csv": spiral_csv[0], "garbage": _garbage(tmp_path)}
    code, out, err = run([a.format(**names) for a in argv])
    assert code != 0
    assert len(err.splitlines()) == 1, err
    assert err.startswith("densa")
    assert message in err
    assert "Traceback" not in err + out


def test_model_with_wrong_feature_count_is_explained(tmp_path, spiral_csv):
    path = spiral_csv[0]
    model = tmp_path / "m.npz"
    # A model without column names (from Network.save) takes a CSV's columns by position.
    net = densa.Network([densa.Dense(2, 2)], loss="softmax_cross_entropy", seed=0)
    net.save(model)
    code, _, err = run(["predict", model, path])
    assert code == 1
    assert "has 3 feature columns but the model expects 2; pass --target" in err


def test_csv_errors_name_row_and_column(tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("a,b\n1,2\n3,oops\n")
    code, _, err = run(["train", bad])
    assert code == 1
    assert "data row 2, column 'b': 'oops' is not a number" in err
    bad.write_text("a,b\n1,2,3\n")
    assert "data row 1: 3 fields, but the header has 2" in run(["train", bad])[2]
    bad.write_text("1,2\n3,4\n")
    assert "looks like data" in run(["train", bad])[2]


def test_errors_in_a_real_process_have_no_traceback(tmp_path):
    garbage = _garbage(tmp_path)
    for args in (["predict", garbage, garbage], ["train", tmp_path / "missing.csv"]):
        proc = run_process(*args)
        assert proc.returncode == 1
        assert "Traceback" not in proc.stderr
        lines = densa_lines(proc.stderr)
        assert len(lines) == 1
        assert lines[0].startswith(f"densa {args[0]}: error: ")


# ----- the audit's defects: columns by name, checks before work or writes ---------------------
def _train(tmp_path, data, *options) -> Path:
    model = tmp_path / "m.npz"
    code, _, err = run(["train", data, "--epochs", "1", "--out", model, "--no-progress", *options])
    assert code == 0, err
    return model


def test_train_saves_the_csv_feature_names_and_predict_uses_them(tmp_path, spiral_csv):
    path, X, _ = spiral_csv
    model = _train(tmp_path, path, "--target", "label")
    net = densa.Network.load(model)
    assert net.feature_names == ["x", "z"]
    # Columns in another order, plus one the model does not know: taken by name.
    shuffled = tmp_path / "shuffled.csv"
    shuffled.write_text(
        "id,z,x\n" + "".join(f"{i},{float(b)!r},{float(a)!r}\n" for i, (a, b) in enumerate(X))
    )
    code, out, err = run(["predict", model, shuffled])
    assert code == 0, err
    names, table = _read_csv(out)
    assert names == ["class", "p0", "p1"]
    np.testing.assert_array_equal(table[:, 1:], net.predict(X))
    # The training CSV itself, target column included, without --target.
    code, out, _ = run(["predict", model, path])
    assert code == 0
    np.testing.assert_array_equal(_read_csv(out)[1][:, 1:], net.predict(X))


def test_predict_refuses_a_csv_without_the_models_columns(tmp_path, spiral_csv):
    model = _train(tmp_path, spiral_csv[0], "--target", "label")
    renamed = tmp_path / "renamed.csv"
    renamed.write_text("a,z\n1,2\n")
    code, out, err = run(["predict", model, renamed])
    assert code == 1
    assert out == ""
    assert "renamed.csv lacks the column(s) x that the model was trained on" in err
    code, _, err = run(["predict", model, spiral_csv[0], "--target", "x"])
    assert f"{spiral_csv[0]}: --target names x, a feature of the model" in err


def test_npy_data_has_no_names_to_store(tmp_path):
    data = tmp_path / "d.npy"
    np.save(data, np.array([[0.0, 1.0, 0.0], [1.0, 0.0, 1.0]]))
    assert densa.Network.load(_train(tmp_path, data)).feature_names is None


@pytest.mark.parametrize("label", ["5", "-1", "0.5"])
def test_predict_checks_the_targets_before_writing(tmp_path, spiral_csv, label):
    model = _train(tmp_path, spiral_csv[0], "--target", "label")
    bad = tmp_path / "bad.csv"
    bad.write_text(f"x,z,label\n0.1,0.2,0\n0.3,0.4,{label}\n")
    out = tmp_path / "o.csv"
    code, _, err = run(["predict", model, bad, "--target", "label", "--out", out])
    assert code == 1
    assert "bad.csv, target label: " in err
    assert "labels must" in err  # whole numbers in [0, 2)
    assert not out.exists()


def test_train_checks_out_before_training(tmp_path, spiral_csv):
    for out, message in [
        (tmp_path / "absent" / "m.npz", f"the directory {tmp_path / 'absent'} does not exist"),
        (tmp_path, "names a directory"),
        (f"{tmp_path / 'new'}{os.sep}", "names a directory"),
    ]:
        code, stdout, err = run(["train", spiral_csv[0], "--out", out, "--no-progress"])
        assert code == 1
        assert message in err
        assert "epoch" not in stdout  # refused before the first epoch
    assert os.listdir(tmp_path) == ["spirals.csv"]


def test_predict_needs_only_x_from_an_npz(tmp_path):
    X, y = datasets.xor()
    data = tmp_path / "xy.npz"
    np.savez(data, X=X, y=y)
    model = _train(tmp_path, data)
    only_x = tmp_path / "x.npz"
    np.savez(only_x, X=X)
    code, out, err = run(["predict", model, only_x])
    assert code == 0, err
    np.testing.assert_array_equal(_read_csv(out)[1][:, 1:], densa.Network.load(model).predict(X))
    # Scoring does need y.
    code, _, err = run(["predict", model, only_x, "--target", "y"])
    assert "must hold arrays 'X' and 'y'; it holds X" in err


@pytest.mark.parametrize(
    ("name", "content"),
    [
        ("one.npy", np.arange(5.0)[:, None]),
        ("flat.npy", np.arange(5.0)),
        ("one.csv", "label\n0\n1\n"),
    ],
)
def test_train_on_a_single_column_says_no_features_are_left(tmp_path, name, content):
    data = tmp_path / name
    if isinstance(content, str):
        data.write_text(content)
    else:
        np.save(data, content)
    code, _, err = run(["train", data, "--no-progress"])
    assert code == 1
    assert f"{data} has one column, the target (the last column by default): no feature" in err


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (
            ["--optimizer", "adam", "--momentum", "0.5"],
            "--momentum is an option of --optimizer sgd",
        ),
        (["--momentum", "0.5"], "--momentum is an option of --optimizer sgd; adam does not use"),
        (["--hidden", "none", "--activation", "tanh"], "but --hidden none makes none"),
    ],
)
def test_train_refuses_options_it_would_ignore(tmp_path, spiral_csv, options, message):
    code, out, err = run(["train", spiral_csv[0], *options, "--out", tmp_path / "m.npz"])
    assert code == 1
    assert message in err
    assert out == ""


def test_train_without_hidden_layers_prints_the_truth(tmp_path, spiral_csv):
    model = tmp_path / "m.npz"
    options = ["--target", "label", "--hidden", "none", "--epochs", "1", "--no-progress"]
    code, out, err = run(["train", spiral_csv[0], *options, "--out", model])
    assert code == 0, err
    assert "network: 2-2 (no hidden layer: one identity layer), float32" in out
    assert "relu" not in out
    assert [layer.activation for layer in densa.Network.load(model).layers] == ["identity"]


def test_npz_object_array_error_names_file_and_array(tmp_path):
    data = tmp_path / "obj.npz"
    np.savez(data, X=np.array([[1, "a"]], dtype=object), y=np.array([0]))
    code, _, err = run(["train", data])
    assert code == 1
    assert f"{data}: array 'X' cannot be read (Object arrays cannot be loaded" in err


# ----- boundaries found by mutation testing -----------------------------------------------------
@pytest.mark.parametrize(
    ("top", "loss", "n_out"), [(99, "softmax_cross_entropy", 100), (100, "mse", 1)]
)
def test_auto_loss_takes_at_most_100_classes(tmp_path, top, loss, n_out):
    """Guards `--loss auto`'s documented K <= 100: labels 0..99 classify, 0..100 regress."""
    data = tmp_path / "labels.npy"
    y = np.arange(top + 1)
    np.save(data, np.column_stack([np.linspace(-1, 1, top + 1), y]))
    net = densa.Network.load(_train(tmp_path, data, "--hidden", "none"))
    assert net.loss == loss
    assert net.n_out == n_out


def test_train_saves_the_momentum_given(tmp_path, spiral_csv):
    """Guards --momentum: the value given is the SGD optimizer's, not the 0.9 default."""
    options = ["--target", "label", "--optimizer", "sgd", "--momentum", "0.5"]
    net = densa.Network.load(_train(tmp_path, spiral_csv[0], *options))
    assert isinstance(net.optimizer, densa.SGD)
    assert net.optimizer.momentum == 0.5


def test_momentum_of_one_is_refused_as_a_usage_error(tmp_path, spiral_csv):
    """Guards --momentum's range [0, 1): 1 is refused by the parser, naming the range."""
    argv = ["train", spiral_csv[0], "--optimizer", "sgd", "--momentum", "1"]
    code, out, err = run([*argv, "--out", tmp_path / "m.npz"])
    assert code == 2
    assert "argument --momentum: expected a number in [0, 1), got '1'" in err
    assert out == ""
    assert not (tmp_path / "m.npz").exists()


def test_softmax_requested_for_a_single_class_trains_two_outputs(tmp_path):
    """Guards --loss softmax_cross_entropy on labels that are all 0: still 2 outputs."""
    data = tmp_path / "one_class.npy"
    np.save(data, np.column_stack([np.linspace(-1, 1, 20), np.zeros(20)]))
    options = ["--loss", "softmax_cross_entropy", "--hidden", "none"]
    net = densa.Network.load(_train(tmp_path, data, *options))
    assert net.loss == "softmax_cross_entropy"
    assert net.n_out == 2


def test_targets_naming_every_column_leave_no_features(tmp_path):
    """Guards --target naming every column of DATA: refused, saying no feature is left."""
    data = tmp_path / "two.csv"
    data.write_text("a,b\n0,1\n1,0\n")
    code, out, err = run(["train", data, "--target", "a,b", "--no-progress"])
    assert code == 1
    assert f"--target 'a,b' leaves no feature columns in {data}" in err
    assert out == ""
