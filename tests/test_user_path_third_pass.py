"""Issue (third pass over the user's path): one test per item, each through what the user ran.

CLI items run `python -m keras_lode ...` in a subprocess with the worktree on PYTHONPATH."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent
SWEEP_TASK = f"{ROOT / 'tests' / 'sweep_tasks.py'}:TINY"


def _env(**extra):
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    env.update(
        KERAS_BACKEND="tensorflow",
        OMP_NUM_THREADS="1",
        PYTHONPATH=os.pathsep.join([str(ROOT), *sys.path]),
        **extra,
    )
    return env


def cli(*argv, cwd, timeout=600, **env):
    return subprocess.run(
        [sys.executable, "-m", "keras_lode", *map(str, argv)],
        cwd=cwd,
        env=_env(**env),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.fixture(scope="module")
def tiny_sweep(tmp_path_factory):
    """A tiny sweep (2 families x 2 LRs x 2 seeds) with 3 switched runs, via the CLI."""
    out = tmp_path_factory.mktemp("sweep") / "runs"
    r = cli("sweep", "--task", SWEEP_TASK, "--out", out, "--switched", 3, "-q", cwd=ROOT)
    assert r.returncode == 0, r.stdout + r.stderr
    return out, r


# ------------------------------------------------------------------------------ item 2
def test_item2_sweep_names_the_best_config_per_family_and_marks_switched_runs(tiny_sweep):
    from keras_lode import load_runs
    from keras_lode.experiments.best import best_per_family

    out, r = tiny_sweep
    assert "Best config per family" in r.stdout, r.stdout
    grid = load_runs(out, kind="grid")
    switched = load_runs(out, kind="switched")
    assert len(grid) == 8 and len(switched) == 3
    assert {run.meta["kind"] for run in grid} == {"grid"}
    assert {run.meta["kind"] for run in switched} == {"switched"}
    best = best_per_family(load_runs(out))
    assert {b["family"] for b in best} == {"cosine", "constant"}
    for b in best:  # each family's best is printed with its peak LR
        assert f"{b['family']:<9} peak LR {b['peak_lr']:<8g}" in r.stdout
    with pytest.raises(ValueError, match="`kind`"):
        load_runs(out, kind="branches")


def test_item2_old_switched_run_files_load_as_switched(tmp_path):
    from keras_lode import Run, load_runs

    meta = {"schedule": "cosine", "peak_lr": 1e-3, "seed": 0, "switch": {"at_point": 1}}
    cols = ([1, 2], [0.5, 1.0], [1e-3, 1e-3], [1.0, 0.9], [0.5, 0.6])
    Run(*cols, meta=meta).save(tmp_path)
    Run(*cols, meta=dict(meta, switch=None, seed=1)).save(tmp_path)
    assert [r.meta["seed"] for r in load_runs(tmp_path, kind="switched")] == [0]
    assert [r.meta["seed"] for r in load_runs(tmp_path, kind="grid")] == [1]


# ------------------------------------------------------------------------------ item 3
def test_item3_docs_and_help_name_all_six_families():
    from keras_lode.constants import FAMILIES

    r = cli("sweep", "--help", cwd=ROOT)
    text = " ".join(r.stdout.split())
    assert ",".join(FAMILIES) in text and f"all {len(FAMILIES)}" in text
    readme = (ROOT / "README.md").read_text()
    usage = " ".join((ROOT / "docs" / "usage.md").read_text().split())  # lines may wrap
    assert "4 families" not in readme
    assert "4 families x 2 peak LRs x 2 seeds" not in usage
    assert "(cosine, onecycle, step, constant, linear, wsd)" in usage


# ------------------------------------------------------------------------------ item 1
MODEL = ROOT / "models" / "fmnist_cnn.npz"


def test_item1_own_task_takes_its_methods_from_runs_and_says_what_the_lode_did(tiny_sweep):
    out, _ = tiny_sweep
    r = cli(
        "compare", "--task", SWEEP_TASK, "--runs", out, "--model", MODEL, "--seeds", "0",
        "--out", out.parent / "cmp", cwd=out.parent,
    )  # fmt: skip
    assert r.returncode == 0, r.stdout + r.stderr
    assert f"methods from --runs {out}: the sweep's best config per family" in r.stdout
    payload = json.loads((out.parent / "cmp" / "results.json").read_text())
    labels = payload["methods"]
    assert labels[0] == "lode" and len(labels) == 3  # the LODE + the best of 2 families
    assert "lode@0.006" not in r.stdout and "wsd" not in " ".join(labels)
    # The paired row pairs the LODE with its own warm-up (the best family at its LR).
    warm = payload["lode_warmup"]
    assert payload["summary"]["paired"]["baseline"].startswith(warm + "@")
    # Per seed, whether the LODE planned/switched: a 4-point run is shorter than its window.
    assert "what the LODE did:" in r.stdout
    assert "seed 0: never planned" in r.stdout


def test_item1_lode_pairs_with_its_warmup_and_an_own_task_needs_methods(tmp_path):
    r = cli("compare", "--task", SWEEP_TASK, "--model", MODEL, "--out", tmp_path, cwd=tmp_path)
    assert r.returncode == 2
    assert "no methods for task 'tiny'" in r.stderr and "--runs DIR" in r.stderr
    r = cli(
        "compare", "--task", SWEEP_TASK, "--model", MODEL, "--seeds", "0", "--out", tmp_path,
        "--methods", "lode@0.03,constant@0.03,cosine@0.03", "--lode-warmup", "cosine",
        cwd=tmp_path,
    )  # fmt: skip
    assert r.returncode == 0, r.stdout + r.stderr
    assert "paired lode - cosine@3e-02" in r.stdout
    assert (
        json.loads((tmp_path / "results.json").read_text())["summary"]["paired"]["baseline"]
        == "cosine@3e-02"
    )
    assert "seed 0: never planned" in r.stdout and "cosine@3e-02 throughout" in r.stdout


# ------------------------------------------------------------------------------ item 5
def test_item5_compare_without_matplotlib_notes_the_missing_plot(tmp_path):
    block = tmp_path / "block"
    block.mkdir()
    (block / "matplotlib.py").write_text("raise ImportError(\"No module named 'matplotlib'\")\n")
    env = _env()
    env["PYTHONPATH"] = os.pathsep.join([str(block), env["PYTHONPATH"]])
    r = subprocess.run(
        [sys.executable, "-m", "keras_lode", "compare", "--task", SWEEP_TASK, "--seeds", "0"]
        + ["--methods", "constant@0.03", "--out", str(tmp_path / "out")],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert r.returncode == 0, r.stdout + r.stderr
    assert "Traceback" not in r.stderr
    assert (tmp_path / "out" / "results.json").is_file()
    notes = [line for line in r.stdout.splitlines() if line.startswith("note: no compare.png")]
    assert len(notes) == 1 and "pip install 'keras_lode[plot]'" in notes[0]


# ------------------------------------------------------------------------------ item 4
SAMPLE = ROOT / "models" / "fmnist_cnn.sample.run.csv"  # 50 log points; the model's W is 10


def test_item4_plan_at_errors_agree_and_speak_in_cli_terms(tmp_path):
    for at in (80, 49):
        r = cli("plan", MODEL, SAMPLE, "--at", at, cwd=tmp_path)
        assert r.returncode == 2
        err = r.stderr.strip()
        assert err.startswith("keras-lode plan: error: --at must be a log point from 9 to 48")
        assert err.endswith(f"Received: --at {at}") and "position" not in err
    assert cli("plan", MODEL, SAMPLE, "--at", 48, cwd=tmp_path).returncode == 0


def test_item4_plan_names_the_run_log_points_of_a_nan_window(tmp_path):
    from keras_lode import load_runs

    run = load_runs(SAMPLE)[0]
    run.loss[11:18] = np.nan
    path = run.save(tmp_path)
    r = cli("plan", MODEL, path, "--at", 20, cwd=tmp_path)
    assert r.returncode == 2, r.stdout + r.stderr
    assert "the window (log points 11 to 20)" in r.stderr
    assert "non-finite loss at log points 11-17" in r.stderr
    assert "the first --at after them is 27" in r.stderr
    assert "[0, 1, 2, 3, 4]" not in r.stderr


def test_item4_plan_into_a_closed_pipe_is_quiet(tmp_path):
    err = tmp_path / "err.txt"
    cmd = f"{sys.executable} -m keras_lode plan {MODEL} {SAMPLE} --at 20 2>{err} | true"
    subprocess.run(["bash", "-c", cmd], cwd=tmp_path, env=_env(), timeout=600, check=True)
    text = err.read_text()
    assert "Traceback" not in text and "BrokenPipeError" not in text, text


# ------------------------------------------------------------------------------ item 6
def test_item6_train_defaults_to_controlled_says_the_verdict_and_shows_member_progress(tmp_path):
    out, report = tmp_path / "m.npz", tmp_path / "r.json"
    r = cli(
        "train", "--synthetic", 24, "--synthetic-points", 20, "--synthetic-switched", 3,
        "--members", 2, "--max-steps", 20, "--window", 5, "--workers", 1,
        "-o", out, "--report", report, cwd=tmp_path,
    )  # fmt: skip
    assert r.returncode == 0, r.stdout + r.stderr
    t = json.loads(report.read_text())
    assert t["kind"] == "controlled"  # the kind that ships, without --kind
    e = t["decision"]["final_metric_error"]
    verdict = [line.strip() for line in r.stdout.splitlines() if "verdict:" in line]
    assert len(verdict) == 1
    if e["lode"] < e["config_mean"]:
        assert verdict[0].startswith("verdict: better than the sweep's per-config means")
    else:
        assert verdict[0].startswith("verdict: NO BETTER than the sweep's per-config means")
    # The bar counts the members' steps (2 x 20), not finished members, so it moves.
    assert "40/40" in r.stderr and "step" in r.stderr, r.stderr


def test_item6_skill_verdict_wording():
    from keras_lode.train.decision import skill_verdict

    worse = {"final_metric_error": {"lode": 0.0196, "config_mean": 0.0177}}
    assert "NO BETTER" in skill_verdict(worse) and "0.0196 vs 0.0177" in skill_verdict(worse)
    better = {"final_metric_error": {"lode": 0.0100, "config_mean": 0.0177}}
    assert "better than" in skill_verdict(better) and "NO" not in skill_verdict(better)


# ------------------------------------------------------------------------------ item 7
def test_item7_in_fit_check_names_a_run_of_another_task_as_plan_does():
    import keras

    from keras_lode import LODECallback, LODESchedule
    from keras_lode._warnings import LODEWarning

    rng = np.random.default_rng(0)
    x = rng.normal(size=(160, 4)).astype("float32")
    y = (x[:, 0] > 0).astype("int64")
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2, activation="softmax")])
    model.compile(
        keras.optimizers.AdamW(LODESchedule(initial_learning_rate=1e-3)),
        "sparse_categorical_crossentropy",
    )
    cb = LODECallback(
        ROOT / "models" / "text_gpt.npz", validation_data=(x[:32], y[:32]), seed=0,
        verbose=0, points_per_epoch=5, task="my_task",
    )  # fmt: skip
    with pytest.warns(LODEWarning) as record:
        model.fit(x, y, batch_size=16, epochs=4, callbacks=[cb], verbose=0)
    assert cb.plans, "the callback made no plan: nothing was checked"
    texts = [str(w.message) for w in record]
    odd = [t for t in texts if "does not look like the runs the model was trained on" in t]
    assert len(odd) == 1, texts  # once per fit
    assert "the run's task 'my_task' is not the model's task 'text_gpt'" in odd[0]


def test_item7_in_fit_check_compares_the_metric_with_the_model_s_own_prediction():
    # A run whose validation accuracy is 0.875 from the start: its median is within the
    # GPT model's 8-sd band (no channel warning), but the model's reconstruction of the
    # metric (~0.48) misses it by > 4 training sd: one LODEWarning per fit says so.
    import keras

    from keras_lode import LODECallback, LODESchedule
    from keras_lode._warnings import LODEWarning

    rng = np.random.default_rng(0)
    x = rng.normal(size=(160, 4)).astype("float32")
    y = np.zeros(160, "int64")
    y_val = np.r_[np.zeros(28), np.ones(4)].astype("int64")
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(
        2, activation="softmax", kernel_initializer="zeros",
        bias_initializer=keras.initializers.Constant([5.0, -5.0]))])  # fmt: skip
    model.compile(
        keras.optimizers.AdamW(LODESchedule(initial_learning_rate=1e-3)),
        "sparse_categorical_crossentropy",
    )
    cb = LODECallback(ROOT / "models" / "text_gpt.npz", validation_data=(x[:32], y_val),
                      seed=0, verbose=0, points_per_epoch=5)  # fmt: skip
    with pytest.warns(LODEWarning) as record:
        model.fit(x, y, batch_size=16, epochs=3, callbacks=[cb], verbose=0)
    assert cb.plans and np.allclose(cb.history[:, 2], 0.875)
    texts = [str(w.message) for w in record]
    assert not any("does not look like the runs the model was trained on:" in t for t in texts)
    miss = [t for t in texts if "misses the observed 0.875" in t and "anchored" not in t]
    assert len(miss) == 1, texts
    # Then the fit keeps its warm-up (anchor_strangers), said once.
    assert len([t for t in texts if "default-anchored" in t]) == 1, texts


def test_item7_compare_passes_its_task_to_the_callback():
    from types import SimpleNamespace

    from keras_lode.experiments.methods import Method, lode_callback

    task = SimpleNamespace(name="my_task", points_per_epoch=5)
    data = SimpleNamespace(x_val=np.zeros((4, 2), "float32"), y_val=np.zeros(4, "int64"))
    method = Method("lode", peak_lr=1e-3, model=str(ROOT / "models" / "text_gpt.npz"))
    cb, _ = lode_callback(method, task, data, total_steps=100, seed=0, verbose=0)
    assert cb.options.task == "my_task"


# ------------------------------------------------------------------------------ item 8
NO_FMNIST = """
import sys
import keras
import keras_lode.tasks.datasets as data
from keras_lode.cli import main

data.FASHION_MNIST_DIRS = []  # no Debian package


def offline():
    raise OSError("no network")  # and no download


keras.datasets.fashion_mnist.load_data = offline
sys.exit(main(["demo", "--quick", "--out", "out"]))
"""


def test_item8_demo_without_fashion_mnist_is_its_message_alone(tmp_path):
    env = _env()
    env.pop("KERAS_LODE_FASHION_MNIST", None)
    r = subprocess.run(
        [sys.executable, "-c", NO_FMNIST], cwd=tmp_path, env=env, capture_output=True,
        text=True, timeout=600,
    )  # fmt: skip
    assert r.returncode == 2, r.stdout + r.stderr
    assert "Traceback" not in r.stderr, r.stderr
    err = [line for line in r.stderr.splitlines() if line.startswith("keras-lode demo:")]
    assert len(err) == 1
    assert err[0].startswith("keras-lode demo: error: Could not load dataset 'fashion_mnist'")
    assert "apt-get install dataset-fashion-mnist" in err[0]


def _fake_results(methods, seeds, switches):
    results = []
    for seed in seeds:
        for m, acc in zip(methods, (0.58, 0.52), strict=True):
            lode = None
            if m.kind == "lode":
                lode = {"plans": 4, "fallbacks": 0, "window": 10, "total_points": 50,
                        "switches": switches.get(seed, {})}  # fmt: skip
            results.append(
                {"method": m.label, "kind": m.kind, "seed": seed, "steps_per_epoch": 20,
                 "epochs": [{"epoch": 1, "val_metric": acc, "test_metric": acc},
                            {"epoch": 2, "val_metric": acc, "test_metric": acc}],
                 "points": {"step": [10, 20, 30, 40], "lr": [1e-2, 1e-2, 5e-3, 1e-3]},
                 "test_at_best_val": acc, "test_at_end": acc, "wall_s": 1.0, "lode": lode}
            )  # fmt: skip
    return results


def test_item8_demo_says_what_the_lode_did(tmp_path, monkeypatch, capsys):
    import keras_lode.experiments as experiments
    from keras_lode.cli import main

    def fake(task, methods, seeds, verbose=0):
        return _fake_results(methods, seeds, {0: {"30": "cosine 1x->0.01x"}})

    monkeypatch.setattr(experiments, "run_comparison", fake)
    assert main(["demo", "--quick", "--seeds", "0,1", "--out", str(tmp_path / "out")]) == 0
    out = capsys.readouterr().out
    assert "what the LODE did:" in out
    assert "seed 0: switched 1 time(s) after wsd@6e-03: at log point 30 to cosine 1x->0.01x" in out
    assert "seed 1: never switched: its 4 plan(s) all kept wsd@6e-03" in out


def _capture_figures(monkeypatch):
    from matplotlib.figure import Figure

    saved = []
    real = Figure.savefig

    def spy(self, *a, **k):
        saved.append(self)
        return real(self, *a, **k)

    monkeypatch.setattr(Figure, "savefig", spy)
    return saved


def test_item8_comparison_png_has_a_legend_in_every_panel(tmp_path, monkeypatch):
    from keras_lode.experiments import Method, plot_comparison

    saved = _capture_figures(monkeypatch)
    methods = [Method("lode", peak_lr=6e-3, model="m.npz"), Method("wsd", peak_lr=6e-3)]
    plot_comparison(_fake_results(methods, [0], {}), tmp_path / "c.png", title="t")
    axes = saved[-1].axes
    assert len(axes) == 3 and all(ax.get_legend() is not None for ax in axes)


def test_item8_plan_plot_title_fits_the_figure(tmp_path, monkeypatch, capsys):
    from keras_lode.cli import main

    saved = _capture_figures(monkeypatch)
    assert (
        main(["plan", str(MODEL), str(SAMPLE), "--at", "20", "--plot", str(tmp_path / "p.png")])
        == 0
    )
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    fig = saved[-1]
    renderer = FigureCanvasAgg(fig).get_renderer()
    box = fig._suptitle.get_window_extent(renderer)
    width, height = fig.bbox.width, fig.bbox.height
    assert box.x0 >= 0 and box.x1 <= width and box.y1 <= height, (box, width)


# ------------------------------------------------------------------------------ item 9
def test_item9_sweep_and_compare_print_no_tensorflow_retracing_notes(tiny_sweep):
    _, r = tiny_sweep  # 11 short fits in one process: TensorFlow's retracing notes, before
    assert "retracing" not in r.stdout + r.stderr, r.stderr[-2000:]
    code = (
        "import logging, keras_lode; keras_lode.import_keras(quiet=True); "
        "print(logging.getLogger('tensorflow').getEffectiveLevel())"
    )
    out = subprocess.run([sys.executable, "-c", code], env=_env(), capture_output=True,
                         text=True, cwd=ROOT, timeout=600)  # fmt: skip
    assert out.stdout.strip() == str(40), out.stderr  # ERROR: warnings below it are hidden


def test_item9_readme_quick_start_prints_no_tensorflow_info_lines():
    text = (ROOT / "README.md").read_text()
    section = text[text.index("## Quick start") :]
    start = section.index("```python") + len("```python")
    code = section[start : section.index("```", start)]
    r = subprocess.run([sys.executable, "-c", code], env=_env(), capture_output=True,
                       text=True, cwd=ROOT, timeout=600)  # fmt: skip
    assert r.returncode == 0, r.stderr[-3000:]
    noise = [line for line in r.stderr.splitlines() if line.startswith(("I0000", "WARNING: All"))]
    assert not noise, r.stderr[-3000:]
    assert "validation loss and accuracy:" in r.stdout
