"""Speed and memory of the recurrent layers of keras-gated against Keras and PyTorch.

    python -m benchmarks.rnn                      # both reference shapes
    python -m benchmarks.rnn --quick --json out.json
    KERAS_BACKEND=jax python -m benchmarks.rnn --layers PeepholeLSTM,keras.LSTM

For every implementation and shape (batch, steps, inputs, units) it times,
in one process, a training step (SGD, forward and backward through the
layer with `return_sequences=True` and a mean-squared-error loss on all
outputs, with the train function compiled the same way for every Keras
layer) and an inference forward. Warm-up calls are excluded; the figures
are medians over `--repeats` rounds, and every round runs each
implementation once in turn, so that drift of a shared machine affects all
alike. The method is described in `docs/benchmarks.md`.

Peak memory is measured per implementation in a fresh subprocess (the peak
resident set of a process only grows, so one process cannot attribute it).
"""

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

REFERENCE_SHAPES = ((32, 100, 128, 256), (128, 50, 256, 512))
QUICK_SHAPES = ((4, 6, 8, 16),)
GRID_DEPTH = 2


# -- multiply-adds of each cell's equations -----------------------------------
#
# Each function returns the multiply-adds of the matrix products of one
# forward pass over a (batch, steps, inputs=D, units=H) sequence. The
# element-wise work (gate non-linearities, peepholes, the cell update) is
# O(H) per unit against the O((D + H) H) of the products and is left out, as
# is customary. A training step counts 3x the forward: the backward pass runs
# two products of the same size for each forward one (the gradient with
# respect to the product's input and with respect to its weight).


def lstm_macs(batch, steps, inputs, units):
    """LSTM (keras.layers.LSTM, torch.nn.LSTM, PeepholeLSTM): 4 blocks, W x and U h."""
    return batch * steps * 4 * units * (inputs + units)


def projected_lstm_macs(batch, steps, inputs, units):
    """LSTM with projection_units = H/2 (LSTMP): W x, U h over P rows, m P."""
    projection = units // 2
    return batch * steps * (4 * units * (inputs + projection) + units * projection)


def coupled_macs(batch, steps, inputs, units):
    """CoupledLSTM (CIFG): 3 blocks f, c, o."""
    return batch * steps * 3 * units * (inputs + units)


def gru_macs(batch, steps, inputs, units):
    """GRU: 3 blocks z, r, h, each with W x and U h."""
    return batch * steps * 3 * units * (inputs + units)


def untied_macs(batch, steps, inputs, units):
    """UntiedLSTM: W x for 5 blocks, U h for 4, and M (z ⊙ φ(c)) (H x H)."""
    return batch * steps * (5 * units * inputs + 4 * units * units + units * units)


def depth_gated_macs(batch, steps, inputs, units, num_layers=1):
    """DepthGatedLSTM: per layer W x for 5 blocks (i, f, c, o, d), U h for 4.

    The first layer reads the D-wide input, and projects it to width H for
    its depth connection when D != H; the layers above read width H.
    """
    first = 5 * units * inputs + 4 * units * units
    if inputs != units:
        first += inputs * units
    above = 5 * units * units + 4 * units * units
    return batch * steps * (first + (num_layers - 1) * above)


def grid_macs(batch, steps, inputs, units, depth=GRID_DEPTH):
    """GridLSTM (LSTM along time and depth): x P, then per level two 2H x 4H products."""
    return batch * steps * (inputs * units + depth * 2 * (2 * units) * (4 * units))


# -- implementations ------------------------------------------------------------


def _keras_gated():
    import keras_gated

    return keras_gated


def _package_layer(class_name, **kwargs):
    def make(units):
        cls = getattr(_keras_gated(), class_name, None)
        if cls is None:
            return None
        return cls(units, return_sequences=True, **kwargs)

    return make


def _projected_lstm(units):
    return _keras_gated().LSTM(units, return_sequences=True, projection_units=units // 2)


def _keras_layer(class_name):
    def make(units):
        import keras

        return getattr(keras.layers, class_name)(units, return_sequences=True)

    return make


# name -> (kind, factory, macs function, depth levels, in default set)
IMPLEMENTATIONS = {
    "PeepholeLSTM": ("keras", _package_layer("PeepholeLSTM"), lstm_macs, 1, True),
    "CoupledLSTM": ("keras", _package_layer("CoupledLSTM"), coupled_macs, 1, True),
    "UntiedLSTM": ("keras", _package_layer("UntiedLSTM"), untied_macs, 1, True),
    "DepthGatedLSTM": (
        "keras", _package_layer("DepthGatedLSTM"), depth_gated_macs, 1, True
    ),
    "DepthGatedLSTM(num_layers=2)": (
        "keras",
        _package_layer("DepthGatedLSTM", num_layers=2),
        lambda b, s, i, u: depth_gated_macs(b, s, i, u, num_layers=2),
        2,
        True,
    ),
    "GridLSTM": (
        "keras",
        _package_layer("GridLSTM", num_layers=GRID_DEPTH),
        grid_macs,
        GRID_DEPTH,
        True,
    ),
    # kg.LSTM and its options (docs/options.md).
    "LSTM": ("keras", _package_layer("LSTM"), lstm_macs, 1, True),
    "LSTM(layer_norm=True)": ("keras", _package_layer("LSTM", layer_norm=True), lstm_macs, 1, True),
    "LSTM(projection_units=units/2)": ("keras", _projected_lstm, projected_lstm_macs, 1, True),
    "LSTM(zoneout=0.1)": ("keras", _package_layer("LSTM", zoneout=0.1), lstm_macs, 1, True),
    "LSTM(cell_clip=3)": ("keras", _package_layer("LSTM", cell_clip=3.0), lstm_macs, 1, False),
    "keras.LSTM": ("keras", _keras_layer("LSTM"), lstm_macs, 1, True),
    "keras.GRU": ("keras", _keras_layer("GRU"), gru_macs, 1, True),
    "torch.LSTM": ("torch", None, lstm_macs, 1, True),
    # Not in the default set: the generic fused loop (no fast path), and the
    # generic cell-by-cell path, for comparison.
    **{
        f"{name}(fast_path=False)": (
            "keras", _package_layer(name, fast_path=False), macs, 1, False
        )
        for name, macs in (("PeepholeLSTM", lstm_macs), ("CoupledLSTM", coupled_macs),
                           ("UntiedLSTM", untied_macs), ("DepthGatedLSTM", depth_gated_macs))
    },
    "DepthGatedLSTM(num_layers=2, fast_path=False)": (
        "keras",
        _package_layer("DepthGatedLSTM", num_layers=2, fast_path=False),
        lambda b, s, i, u: depth_gated_macs(b, s, i, u, num_layers=2),
        2,
        False,
    ),
    # The depth-gated stack with the LSTM options, fast and generic.
    **{
        f"DepthGatedLSTM(num_layers=2, {option}{', fast_path=False' if generic else ''})": (
            "keras",
            _package_layer(
                "DepthGatedLSTM", num_layers=2, **dict([value]),
                **({"fast_path": False} if generic else {}),
            ),
            lambda b, s, i, u: depth_gated_macs(b, s, i, u, num_layers=2),
            2,
            False,
        )
        for option, value in (("layer_norm=True", ("layer_norm", True)),
                              ("zoneout=0.1", ("zoneout", 0.1)))
        for generic in (False, True)
    },
    "GridLSTM(fast_path=False)": (
        "keras",
        _package_layer("GridLSTM", num_layers=GRID_DEPTH, fast_path=False),
        grid_macs,
        GRID_DEPTH,
        False,
    ),
    "PeepholeLSTM(fused=False)": (
        "keras", _package_layer("PeepholeLSTM", fused=False), lstm_macs, 1, False
    ),
    "GridLSTM(fused=False)": (
        "keras",
        _package_layer("GridLSTM", num_layers=GRID_DEPTH, fused=False),
        grid_macs,
        GRID_DEPTH,
        False,
    ),
}


def _available(name):
    kind, factory, _, _, _ = IMPLEMENTATIONS[name]
    if kind == "torch":
        try:
            import torch  # noqa: F401
        except ImportError:
            return False
        return True
    if name.split("(")[0] in ("DepthGatedLSTM", "GridLSTM"):
        return hasattr(_keras_gated(), name.split("(")[0])
    return True


def _seeded_data(shape):
    import numpy as np

    batch, steps, inputs, units = shape
    rng = np.random.default_rng(0)
    x = rng.standard_normal((batch, steps, inputs)).astype("float32")
    y = rng.standard_normal((batch, steps, units)).astype("float32") * 0.1
    return x, y


def jit_mode(requested):
    """The `jit_compile` used for every Keras model, and its description."""
    import keras

    backend = keras.backend.backend()
    if backend == "jax":
        return True, "jax.jit (XLA), as Keras always compiles on JAX"
    if backend == "torch":
        return False, "eager PyTorch (Keras's default on the torch backend)"
    if requested == "xla":
        return True, "tf.function with XLA (jit_compile=True)"
    return False, "tf.function graph, no XLA (Keras's default on CPU)"


def build_runner(name, shape, jit_compile):
    """Returns `(train_step, inference, path)` for one implementation.

    `path()` says, once the functions have run, which loop the layer ran
    and why (`describe_path`).
    """
    kind, factory, _, _, _ = IMPLEMENTATIONS[name]
    batch, steps, inputs, units = shape
    x, y = _seeded_data(shape)
    if kind == "torch":
        import contextlib

        import keras
        import torch

        torch.manual_seed(0)
        # cuDNN's LSTM on a GPU, ATen's on the CPU.
        device = "cuda" if torch.cuda.is_available() else "cpu"
        # Under a mixed-precision policy torch's own counterpart: autocast,
        # the products in the half type, the weights in float32. oneDNN has
        # no float16 LSTM: on the CPU that row stays in float32.
        compute_dtype = keras.mixed_precision.dtype_policy().compute_dtype
        autocast = compute_dtype != "float32" and (device == "cuda" or compute_dtype == "bfloat16")
        precision = (
            (lambda: torch.autocast(device, dtype=getattr(torch, compute_dtype)))
            if autocast else contextlib.nullcontext
        )
        described = f"torch.nn.LSTM on {device}" + (
            f" under torch.autocast({compute_dtype})" if autocast
            else " in float32" if compute_dtype != "float32" else ""
        )
        lstm = torch.nn.LSTM(inputs, units, batch_first=True).to(device)
        optimizer = torch.optim.SGD(lstm.parameters(), lr=1e-3)
        tx, ty = torch.from_numpy(x).to(device), torch.from_numpy(y).to(device)

        def train_step():
            optimizer.zero_grad()
            with precision():
                outputs, _ = lstm(tx)
                loss = torch.nn.functional.mse_loss(outputs.float(), ty)
            loss.backward()
            optimizer.step()
            return loss.item()

        def inference():
            with torch.no_grad(), precision():
                outputs, _ = lstm(tx)
            # Waits for the device, as predict_on_batch's numpy result does.
            return outputs.cpu()

        return train_step, inference, lambda: described

    import keras

    keras.utils.set_random_seed(0)
    layer = factory(units)
    sequence = keras.Input(batch_shape=(batch, steps, inputs))
    model = keras.Model(sequence, layer(sequence))
    # A projected layer's outputs are narrower than its units.
    y = y[..., : model.output.shape[-1]]
    model.compile(
        optimizer=keras.optimizers.SGD(1e-3), loss="mse", jit_compile=jit_compile
    )

    def train_step():
        return model.train_on_batch(x, y)

    def inference():
        return model.predict_on_batch(x)

    return train_step, inference, lambda: describe_path(layer)


def describe_path(layer):
    """Which loop a layer's last call ran, and why when it is not the fast one."""
    path = getattr(layer, "last_call_path", None)
    if path is None:
        # keras.layers.LSTM / GRU: cuDNN where Keras can use it, else its loop.
        return "keras"
    reason = layer.fast_path_unavailable_reason()
    return path if path == "fast" or reason is None else f"{path}: {reason}"


def gemm_rate(shape, repeats):
    """GFLOP/s of one (batch*steps, H) x (H, 4H) product on the active backend,
    in the compute dtype of Keras's global policy."""
    import keras
    import numpy as np
    from keras import ops

    dtype = keras.mixed_precision.dtype_policy().compute_dtype
    batch, steps, inputs, units = shape
    rng = np.random.default_rng(1)
    a = ops.cast(rng.standard_normal((batch * steps, units)).astype("float32"), dtype)
    b = ops.cast(rng.standard_normal((units, 4 * units)).astype("float32"), dtype)

    def product():
        # Reading one element waits for the whole product on async backends.
        return float(ops.convert_to_numpy(ops.cast(ops.matmul(a, b)[0, 0], "float32")))

    for _ in range(2):
        product()
    times = []
    for _ in range(max(repeats, 3)):
        start = time.perf_counter()
        product()
        times.append(time.perf_counter() - start)
    flops = 2.0 * batch * steps * units * 4 * units
    return flops / statistics.median(times) / 1e9


def _timed(function):
    start = time.perf_counter()
    function()
    return time.perf_counter() - start


# With these, a process's peak resident memory is close to the peak of its
# live tensors: TensorFlow's oneDNN memory pool, which keeps and reuses what
# it once took (and fragments, depending on the order of allocations), is
# off, and glibc returns every freed tensor over 128 KiB to the system.
LIVE_MEMORY_ENVIRONMENT = {
    "TF_ENABLE_ONEDNN_OPTS": "0",
    "MALLOC_MMAP_THRESHOLD_": "131072",
}


def measure_memory(name, shape, jit, live=False):
    """Peak resident memory of a fresh process that trains `name` at `shape`.

    With `live`, the process runs with `LIVE_MEMORY_ENVIRONMENT`.
    """
    command = [
        sys.executable, "-m", "benchmarks.rnn", "--_memory-child", name,
        "--shapes", "x".join(map(str, shape)), "--jit", jit,
        "--policy", keras_policy_name(),
    ]
    env = dict(os.environ)
    if live:
        env.update(LIVE_MEMORY_ENVIRONMENT)
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env["PYTHONPATH"] = root + os.pathsep + env.get("PYTHONPATH", "")
    result = subprocess.run(
        command, capture_output=True, text=True, env=env, cwd=root, timeout=900
    )
    for line in result.stdout.splitlines()[::-1]:
        if line.startswith("{"):
            return json.loads(line)
    raise RuntimeError(
        f"memory measurement of {name} failed:\n{result.stderr[-2000:]}"
    )


def _status_mb(field):
    """A memory figure of this process from /proc/self/status, in MiB."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    raise RuntimeError(f"/proc/self/status has no {field}")


def _reset_peak():
    """Restarts the peak-RSS count (Linux >= 4.0), so import spikes do not count."""
    try:
        with open("/proc/self/clear_refs", "w") as clear_refs:
            clear_refs.write("5")
        return True
    except OSError:
        return False


def keras_policy_name():
    """The name of Keras's global dtype policy (float32 unless `--policy`)."""
    import keras

    return keras.mixed_precision.dtype_policy().name


def _memory_child(name, shape, jit):
    """Runs in the subprocess: baseline after imports and data, then peak."""
    import keras  # noqa: F401

    if IMPLEMENTATIONS[name][0] == "torch":
        import torch

        torch.set_num_threads(2)
    _seeded_data(shape)
    reset = _reset_peak()
    baseline = _status_mb("VmRSS")
    train_step, inference, _ = build_runner(name, shape, jit_mode(jit)[0])
    for _ in range(3):
        train_step()
    # Training keeps what its backward loop needs and inference does not,
    # so each gets its own peak.
    train_peak = _peak_mb(reset)
    inference_mb = None
    if reset and _reset_peak():
        inference_start = _status_mb("VmRSS")
        inference()
        inference_mb = _peak_mb(reset) - inference_start
    else:
        inference()
    print(json.dumps({"peak_rss_mb": train_peak, "baseline_rss_mb": baseline,
                      "training_mb": train_peak - baseline,
                      "inference_mb": inference_mb,
                      "peak_reset_after_imports": reset,
                      "policy": keras_policy_name(),
                      "environment": {key: os.environ.get(key)
                                      for key in LIVE_MEMORY_ENVIRONMENT}}))


def _peak_mb(reset):
    if reset:
        return _status_mb("VmHWM")
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _log(message):
    print(message, flush=True)


def run(shapes, names, repeats, warmup, jit, memory, log=_log):
    import keras

    backend = keras.backend.backend()
    jit_compile, jit_description = jit_mode(jit)
    if any(IMPLEMENTATIONS[n][0] == "torch" for n in names):
        import torch

        torch.set_num_threads(2)
    results = {
        "backend": backend,
        "compilation": jit_description,
        "policy": keras_policy_name(),
        "machine": machine_description(),
        "shapes": [],
    }
    for shape in shapes:
        log(f"shape (batch, steps, inputs, units) = {shape}")
        runners = {}
        for name in names:
            start = time.perf_counter()
            runners[name] = build_runner(name, shape, jit_compile)
            for _ in range(warmup):
                runners[name][0]()
                runners[name][1]()
            log(f"  built and warmed {name} in {time.perf_counter() - start:.1f} s")
        times = {name: {"train": [], "inference": []} for name in names}
        for phase, index in (("train", 0), ("inference", 1)):
            for _ in range(repeats):
                for name in names:
                    times[name][phase].append(_timed(runners[name][index]))
        gemm = gemm_rate(shape, repeats)
        rows = []
        for name in names:
            _, _, macs, levels, _ = IMPLEMENTATIONS[name]
            forward_flops = 2.0 * macs(*shape)
            row = {"name": name, "levels": levels, "path": runners[name][2]()}
            for phase, multiple in (("train", 3), ("inference", 1)):
                seconds = statistics.median(times[name][phase])
                gflops = multiple * forward_flops / seconds / 1e9
                row[phase] = {
                    "ms": 1000 * seconds,
                    "samples_ms": [1000 * t for t in times[name][phase]],
                    "gflops": gflops,
                    "gemm_fraction": gflops / gemm,
                }
            rows.append(row)
        for row in rows:
            for phase in ("train", "inference"):
                for reference, key in (("keras.LSTM", "vs_keras_lstm"),
                                       ("torch.LSTM", "vs_torch_lstm")):
                    other = next((r for r in rows if r["name"] == reference), None)
                    row[phase][key] = (
                        row[phase]["ms"] / other[phase]["ms"] if other else None
                    )
        if memory in ("subprocess", "live"):
            for row in rows:
                log(f"  memory of {row['name']} ...")
                row["memory"] = measure_memory(row["name"], shape, jit)
                if memory == "live":
                    live = measure_memory(row["name"], shape, jit, live=True)
                    row["memory"]["live_training_mb"] = live["training_mb"]
            lstm = next((r for r in rows if r["name"] == "keras.LSTM"), None)
            for row in rows:
                for key, ratio_key in (("training_mb", "vs_keras_lstm"),
                                       ("live_training_mb", "live_vs_keras_lstm")):
                    if key in row["memory"]:
                        row["memory"][ratio_key] = (
                            row["memory"][key] / lstm["memory"][key] if lstm else None
                        )
        results["shapes"].append(
            {"shape": dict(zip(("batch", "steps", "inputs", "units"), shape)),
             "gemm_gflops": gemm, "rows": rows}
        )
        log(format_table(results["shapes"][-1]))
    return results


BACKENDS = ("tensorflow", "jax", "torch")
POLICIES = ("float32", "mixed_bfloat16", "mixed_float16")


def _without_backend(argv):
    """The command line without `--backend X` / `--backend=X` and `--json`."""
    kept, skip = [], False
    for item in argv:
        if skip:
            skip = False
            continue
        if item in ("--backend", "--json"):
            skip = True
            continue
        if item.startswith(("--backend=", "--json=")):
            continue
        kept.append(item)
    return kept


def run_backends(backends, argv, json_path, log=_log):
    """Runs the benchmark once per backend, each in a fresh process (Keras fixes
    its backend at import); returns 0 if every backend ran."""
    import tempfile

    combined, failed = {"backends": {}}, []
    with tempfile.TemporaryDirectory() as folder:
        for backend in backends:
            path = os.path.join(folder, f"{backend}.json")
            log(f"== backend {backend}")
            env = dict(os.environ, KERAS_BACKEND=backend)
            result = subprocess.run(
                [sys.executable, "-m", "benchmarks.rnn", *argv, "--json", path], env=env
            )
            if result.returncode != 0 or not os.path.exists(path):
                log(f"== backend {backend} failed (exit status {result.returncode})")
                failed.append(backend)
                continue
            with open(path) as handle:
                combined["backends"][backend] = json.load(handle)
    if json_path:
        with open(json_path, "w") as out:
            json.dump(combined, out, indent=1)
    for backend, results in combined["backends"].items():
        log(f"\n## {backend}: {results['compilation']}")
        for entry in results["shapes"]:
            log(format_table(entry))
    return 1 if failed else 0


def machine_description():
    import keras

    model = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    versions = {"keras": keras.__version__, "python": platform.python_version()}
    for module in ("tensorflow", "jax", "torch"):
        if module in sys.modules:
            versions[module] = sys.modules[module].__version__
    return {"cpu": model, "cores": os.cpu_count(), "versions": versions}


def _ratio(value):
    return "-" if value is None else f"{value:.2f}"


def format_table(entry):
    shape = entry["shape"]
    live = any("live_training_mb" in row.get("memory", {}) for row in entry["rows"])
    lines = [
        "",
        f"(batch, steps, inputs, units) = ({shape['batch']}, {shape['steps']}, "
        f"{shape['inputs']}, {shape['units']}); GEMM rate "
        f"{entry['gemm_gflops']:.0f} GFLOP/s",
        "",
        "| layer | path | train ms | vs keras LSTM | vs torch LSTM | GFLOP/s | of GEMM "
        "| infer ms | vs keras LSTM | vs torch LSTM | GFLOP/s | of GEMM "
        "| peak MB | train MB | mem vs keras LSTM | infer MB |"
        + (" live MB | live vs keras LSTM |" if live else ""),
        "|---|---|" + "---:|" * (16 if live else 14),
    ]
    for row in entry["rows"]:
        cells = [row["name"] if row["levels"] == 1
                 else f"{row['name']} ({row['levels']} levels)", _short_path(row.get("path", "-"))]
        for phase in ("train", "inference"):
            p = row[phase]
            cells += [f"{p['ms']:.1f}", _ratio(p["vs_keras_lstm"]),
                      _ratio(p["vs_torch_lstm"]), f"{p['gflops']:.1f}",
                      f"{100 * p['gemm_fraction']:.0f}%"]
        memory = row.get("memory")
        if memory:
            inference_mb = memory.get("inference_mb")
            cells += [f"{memory['peak_rss_mb']:.0f}",
                      f"{memory['training_mb']:.0f}",
                      _ratio(memory["vs_keras_lstm"]),
                      "-" if inference_mb is None else f"{inference_mb:.0f}"]
        else:
            cells += ["-", "-", "-", "-"]
        if live:
            live_mb = (memory or {}).get("live_training_mb")
            cells += ["-" if live_mb is None else f"{live_mb:.0f}",
                      _ratio((memory or {}).get("live_vs_keras_lstm"))]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _short_path(path):
    """The loop's name for the table; the reason is in the JSON and docs."""
    return path.split(":")[0]


def _parse_shapes(text):
    shapes = []
    for item in text.split(","):
        parts = item.lower().split("x")
        if len(parts) != 4 or not all(p.strip().isdigit() for p in parts):
            raise argparse.ArgumentTypeError(
                f"--shapes takes BATCHxSTEPSxINPUTSxUNITS items separated by "
                f"commas, e.g. 32x100x128x256; received {item!r}"
            )
        shapes.append(tuple(int(p) for p in parts))
    return shapes


def main(argv=None):
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.rnn", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--shapes", type=_parse_shapes, default=None,
                        help="BATCHxSTEPSxINPUTSxUNITS[,...]; default: "
                        "32x100x128x256,128x50x256x512")
    parser.add_argument("--layers", default=None,
                        help="comma-separated names among: "
                        + ", ".join(IMPLEMENTATIONS))
    parser.add_argument("--repeats", type=int, default=None,
                        help="timed rounds per phase (default 7, quick 2)")
    parser.add_argument("--warmup", type=int, default=2,
                        help="untimed calls of each function first (default 2)")
    parser.add_argument("--jit", choices=("none", "xla"), default="none",
                        help="TensorFlow: compile the train functions without "
                        "(default) or with XLA; ignored on JAX and torch")
    parser.add_argument("--memory", choices=("subprocess", "live", "none"),
                        default="subprocess",
                        help="measure peak memory, one subprocess per layer; "
                        "live: also once more with TensorFlow's oneDNN memory "
                        "pool off and glibc returning freed tensors, which "
                        "comes close to the peak of live tensors")
    parser.add_argument("--policy", choices=POLICIES, default="float32",
                        help="Keras's dtype policy for every Keras layer (default "
                        "float32); torch.nn.LSTM runs under torch.autocast to the "
                        "same half type")
    parser.add_argument("--quick", action="store_true",
                        help="tiny shapes and 2 repeats: a smoke test")
    parser.add_argument("--json", metavar="PATH", help="write the figures here")
    parser.add_argument("--backend", default=None,
                        help="comma-separated Keras backends (tensorflow,jax,torch): "
                        "runs the benchmark once per backend, each in its own "
                        "process, and writes all tables (default: KERAS_BACKEND)")
    parser.add_argument("--_memory-child", dest="memory_child",
                        help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.memory_child:
        _set_policy(args.policy)
        _memory_child(args.memory_child, args.shapes[0], args.jit)
        return 0
    if args.backend:
        backends = [b.strip() for b in args.backend.split(",") if b.strip()]
        unknown = [b for b in backends if b not in BACKENDS]
        if unknown:
            parser.error(f"unknown --backend {unknown}; choose among {list(BACKENDS)}")
        return run_backends(backends, _without_backend(argv if argv is not None else sys.argv[1:]),
                            args.json)

    _set_policy(args.policy)
    shapes = args.shapes or (QUICK_SHAPES if args.quick else REFERENCE_SHAPES)
    repeats = args.repeats or (2 if args.quick else 7)
    if args.layers:
        names = _layer_names(args.layers)
        unknown = [n for n in names if n not in IMPLEMENTATIONS]
        if unknown:
            parser.error(f"unknown --layers {unknown}; choose among "
                         f"{list(IMPLEMENTATIONS)}")
    else:
        names = [n for n, spec in IMPLEMENTATIONS.items() if spec[4]]
    names = [n for n in names if _available(n)]
    if args.warmup < 1:
        parser.error("--warmup must be at least 1: the first call compiles")
    results = run(shapes, names, repeats, args.warmup, args.jit, args.memory)
    if args.json:
        with open(args.json, "w") as out:
            json.dump(results, out, indent=1)
    return 0


def _set_policy(name):
    import keras

    keras.mixed_precision.set_global_policy(name)


def _layer_names(text):
    """The names of a `--layers` list: commas inside parentheses, as in
    `DepthGatedLSTM(num_layers=2, fast_path=False)`, do not split."""
    names, depth, current = [], 0, ""
    for character in text:
        depth += {"(": 1, ")": -1}.get(character, 0)
        if character == "," and depth == 0:
            names.append(current.strip())
            current = ""
        else:
            current += character
    names.append(current.strip())
    return [name for name in names if name]


if __name__ == "__main__":
    sys.exit(main())
