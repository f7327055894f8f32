"""Benchmark keras_er on every backend; write results.json, results.md, results.png.

    python -m benchmarks                       # all three backends, ~15 min on 2 cores
    python -m benchmarks --backends jax --models resnet20 --repeats 5 --no-memory
    python -m benchmarks dst --backends tensorflow   # DST update overhead: dst_overhead.json, .md
    python -m benchmarks knobs --backends torch      # speed settings per backend: knobs.json, .md
    python -m benchmarks load                        # fresh-process zoo.load seconds: load_time.json, .md
    python -m benchmarks export                      # LiteRT/ONNX/SavedModel sizes and latency: export.json, .md
    python -m benchmarks size                        # sparse vs dense .keras bytes: keras_file_size.json, .md
    python -m benchmarks lanes                       # a process per core vs one on all: lanes.json, .md
    python -m benchmarks --backends jax --update     # re-measure one backend, keep the others' rows
    python -m benchmarks gpu FOLDER --device NAME    # the GPU table from a lease's bench_<backend>.json

Each backend runs in its own process, with Keras' compile defaults and keras_er's layers (their own fast paths).
Speed is reported in absolute terms (img/s; GFLOP/s against a numpy GEMM measured
just before that backend's process, see benchmarks.roofline) and as ratios to the
same dense Keras model timed in the same process (interleaved steps, median).
The performance page's table (docs/performance.md, between the bench-table markers) is rewritten from results.md.
"""

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from benchmarks import roofline
from benchmarks import sparse_inference
from benchmarks.common import machine
from benchmarks.common import run_worker
from keras_er import BACKENDS  # keras-free

ROOT = Path(__file__).resolve().parent
README = ROOT.parent / "docs" / "performance.md"  # the page whose bench-table is rewritten
TABLE_MARKERS = ("<!-- bench-table -->\n", "<!-- /bench-table -->")
TARGETS = {"masked_train": 0.95, "popup_train": 0.85, "file_ratio_per_density": 1.5, "resnet50_masks_s": 1.0}


def flagship_masks():
    """The published flagship's masks, through the keras_er API (any backend)."""
    import keras

    import keras_er

    model = keras_er.zoo.resnet20_erk(0.1)
    return [keras.ops.convert_to_numpy(l.mask) for l in keras_er.masks.masked_layers(model)]


def collect(args, previous=None):
    """Measure every backend in `args`; with `previous` results, keep the backends and static parts not re-measured."""
    results = {"backends": {}, **(previous or {}), "machine": machine(), "targets": TARGETS}
    for i, backend in enumerate(args.backends):
        extra = ["--static"] if i == 0 else []
        gemm = roofline.gemm_bound()
        settings = ["--models", *args.models, "--repeats", str(args.repeats), *extra]
        results["backends"][backend] = run_worker(backend, *settings)
        results["backends"][backend].update(gemm=gemm, gemm_gflops=gemm["gflops"])
        if args.memory:
            results["backends"][backend]["peak_rss_mib"] = {
                arch: {
                    v: run_worker(backend, "--memory", arch, v)["peak_rss_mib"] for v in ("dense", "masked", "popup")
                }
                for arch in args.models
            }
    first = results["backends"][args.backends[0]]
    results["file_ratio"] = first.pop("file_ratio")
    results["mask_sampling_s"] = first.pop("mask_sampling_s")
    results["sparse_inference"] = {
        "csr_vs_dense_matmul": sparse_inference.sparse_matmul_speedup(),
        "flagship_compactable_fraction": sparse_inference.compactable_fraction(flagship_masks()),
    }
    return results


def speed_rows(results):
    """One table row per backend and model: absolute speed, fraction of the GEMM bound, ratios to dense."""
    lines = [
        "| backend | model | path | dense train img/s | train GFLOP/s | GEMM GFLOP/s | of GEMM bound "
        "| of the model's GEMMs | masked / dense train | popup / dense train | masked / dense inference "
        "| peak RSS masked / dense |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for backend, result in results["backends"].items():
        gemm = result.get("gemm_gflops")
        for arch, t in result["throughput"].items():
            rss = result.get("peak_rss_mib", {}).get(arch)
            memory = f"{rss['masked'] / rss['dense']:.2f}" if rss else "n/a"
            gflops = t.get("train_gflops")
            lines.append(
                f"| {backend} | {arch} | {_path(backend, t)} | {t['train_images_per_s']['dense']:.0f} "
                f"| {_number(gflops)} | {_number(gemm)} | {_fraction(gflops, gemm)} "
                f"| {_fraction(gflops, t.get('model_gemm_gflops'))} "
                f"| {t['train_ratio']['masked']:.2f} | {t['train_ratio']['popup']:.2f} "
                f"| {t['infer_ratio']['masked']:.2f} | {memory} |"
            )
    return lines


def _fraction(part, whole):
    return f"{part / whole:.0%}" if part and whole else "n/a"


def _number(value):
    return "n/a" if value is None else f"{value:.1f}"


def _path(backend, throughput):
    """How the step ran: XLA / torch.compile / eager."""
    if backend == "jax":
        return "XLA"
    compiled = throughput.get("jit_compile") == "True"
    return {"tensorflow": ("XLA" if compiled else "graph"), "torch": ("torch.compile" if compiled else "eager")}.get(
        backend, str(compiled)
    )


def flops_caption(results):
    """The FLOP convention and the per-image counts, from the architecture."""
    counts = {}
    for result in results["backends"].values():
        for arch, t in result["throughput"].items():
            if t.get("train_flops_per_image"):
                counts[arch] = t["train_flops_per_image"]
    per_image = ", ".join(f"{arch} {flops / 1e9:.3f}" for arch, flops in counts.items())
    return (
        f"Train GFLOP/s = train FLOPs per image × dense img/s, where train FLOPs = "
        f"{roofline.TRAIN_FORWARD_RATIO} × forward and forward = 2 × the multiply-adds of every Conv/Dense layer, "
        f"counted from the built model (benchmarks/roofline.py; GFLOP per train image: {per_image}). "
        "GEMM GFLOP/s: numpy float32 2048³ matmul, best of 5 and of all BLAS threads or one, measured just before "
        "that backend's process; "
        "'of GEMM bound' is their ratio. 'Of the model's GEMMs': train GFLOP/s over the rate numpy reaches on "
        "the model's own matmuls (every Conv/Dense layer's forward, input-gradient and kernel-gradient GEMM as "
        "im2col shapes, `roofline.model_gemm_gflops`), measured in that backend's process. "
        "Batch 128, median of interleaved steps."
    )


def markdown(results):
    m = results["machine"]
    lines = [
        f"Machine: {m['cpu']}, {m['cores']} cores, ISA {' '.join(m.get('isa', [])) or 'n/a'}; "
        f"Python {m['python']}, Keras {m['keras']}, "
        + ", ".join(f"{p} {m[p]}" for p in ("tensorflow", "torch", "jax") if p in m)
        + ".",
        "",
        *speed_rows(results),
        "",
        flops_caption(results),
    ]
    lines += [
        "",
        "| ResNet20 zoo file | bytes / dense `.weights.h5` | target (≤ 1.5 × density) |",
        "| --- | --- | --- |",
    ]
    for name, ratio in results["file_ratio"]["ratio"].items():
        density = 0.5 if name.startswith("popup") else float(name.split("_")[1])
        lines.append(f"| {name} | {ratio:.3f} | {1.5 * density:.3f} |")
    lines += [
        "",
        "| mask sampling (density 0.1) | erk | uniform | balanced | pyramidal |",
        "| --- | --- | --- | --- | --- |",
    ]
    for arch, seconds in results["mask_sampling_s"].items():
        lines.append(
            f"| {arch} ({seconds['weights'] / 1e6:.1f} M weights) | "
            + " | ".join(f"{seconds[s]:.3f} s" for s in ("erk", "uniform", "balanced", "pyramidal"))
            + " |"
        )
    sparse = results["sparse_inference"]["csr_vs_dense_matmul"]
    lines += [
        "",
        f"Sparse inference (moonshot), im2col matmul {sparse['shape']}: dense "
        f"{sparse['dense_ms']:.2f} ms; scipy CSR speed-up "
        + ", ".join(f"{k}: {v['speedup']:.2f}×" for k, v in sparse.items() if isinstance(v, dict))
        + f". Flagship conv weights removable by channel compaction: "
        f"{results['sparse_inference']['flagship_compactable_fraction']:.1%}.",
    ]
    return "\n".join(lines) + "\n"


def plot(results, path):
    from matplotlib.figure import Figure  # no pyplot state, no backend switch

    rows = [
        (f"{b}\n{a}", t["train_ratio"]["masked"], t["train_ratio"]["popup"], t["infer_ratio"]["masked"])
        for b, r in results["backends"].items()
        for a, t in r["throughput"].items()
    ]
    x = np.arange(len(rows))
    fig = Figure(figsize=(max(6, 1.3 * len(rows)), 3.5))
    ax = fig.subplots()
    for i, label in enumerate(["masked train", "popup train", "masked inference"]):
        ax.bar(x + (i - 1) * 0.27, [r[i + 1] for r in rows], 0.27, label=label)
    ax.axhline(1.0, color="black", linewidth=0.8)
    ax.axhline(0.95, color="grey", linestyle="--", linewidth=0.8)
    ax.set_xticks(x, [r[0] for r in rows], fontsize=8)
    ax.set_ylabel("throughput / dense")
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def dst_main(argv):
    """`python -m benchmarks dst`: epoch time of static, SET and RigL training (benchmarks.dst_overhead)."""
    from benchmarks import dst_overhead

    parser = argparse.ArgumentParser(prog="python -m benchmarks dst", description=dst_overhead.__doc__.splitlines()[0])
    parser.add_argument("--backends", nargs="+", default=list(BACKENDS), choices=BACKENDS)
    parser.add_argument("--models", nargs="+", default=["resnet20"])
    parser.add_argument("--steps", type=int, default=300, help="steps per timed epoch")
    parser.add_argument("--update-every", type=int, default=100, help="steps between mask updates")
    parser.add_argument("--rounds", type=int, default=2, help="timed epochs per method (median)")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--out", default=str(ROOT / "results"))
    args = parser.parse_args(argv)
    settings = ["--steps", str(args.steps), "--update-every", str(args.update_every), "--rounds", str(args.rounds)]
    settings += ["--batch-size", str(args.batch_size), "--models", *args.models]
    runs = []
    for backend in args.backends:
        runs += run_worker(backend, "--dst", *settings)["dst_overhead"]
    results = {"machine": machine(), "target_rigl_time_ratio": dst_overhead.TARGET, "runs": runs}
    text = dst_overhead.markdown(runs)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "dst_overhead.json").write_text(json.dumps(results, indent=1))
    (out / "dst_overhead.md").write_text(text)
    print(text)


def gpu_markdown(results, device):
    """The table of benchmark workers run on an accelerator (`--device-gemm`): per backend and model,
    img/s and GFLOP/s against that backend's own float32 matmul on the device, and the ratios."""
    lines = [
        f"Device: {device}.",
        "",
        "| backend | model | path | dense train img/s | train GFLOP/s | device GEMM GFLOP/s | of GEMM bound "
        "| masked / dense train | popup / dense train | dense inference img/s | masked / dense inference |",
        "| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for backend, result in results.items():
        gemm = result.get("device_gemm_gflops")
        for arch, t in result["throughput"].items():
            gflops = t.get("train_gflops")
            lines.append(
                f"| {backend} | {arch} | {_path(backend, t)} | {t['train_images_per_s']['dense']:.0f} "
                f"| {gflops:.0f} | {gemm:.0f} | {gflops / gemm:.0%} "
                f"| {t['train_ratio']['masked']:.2f} | {t['train_ratio']['popup']:.2f} "
                f"| {t['infer_images_per_s']['dense']:.0f} | {t['infer_ratio']['masked']:.2f} |"
            )
    lines += [
        "",
        "Device GEMM: float32 8192³ `keras.ops.matmul` on the device at the backend's default precision "
        "(JAX lets XLA use TF32 tensor cores; torch keeps matmuls in full float32, while cuDNN convolutions "
        "use TF32 by default), best of 5. Batch 128; FLOPs as in the CPU table.",
    ]
    return "\n".join(lines) + "\n"


def gpu_main(argv):
    """`python -m benchmarks gpu FOLDER --device NAME`: render bench_<backend>.json from a GPU lease."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks gpu", description=gpu_main.__doc__.split(":")[1])
    parser.add_argument("folder", help="holds bench_<backend>.json (benchmarks.worker --device-gemm)")
    parser.add_argument("--device", required=True, help="the accelerator's name, as the table shows it")
    parser.add_argument("--out", default=str(ROOT / "results" / "gpu.md"))
    args = parser.parse_args(argv)
    results = {
        path.stem.removeprefix("bench_"): json.loads(path.read_text())
        for path in sorted(Path(args.folder).glob("bench_*.json"))
    }
    if not results:
        raise SystemExit(f"no bench_<backend>.json in {args.folder}")
    text = gpu_markdown(results, args.device)
    Path(args.out).write_text(text)
    print(text)


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["dst"]:
        return dst_main(argv[1:])
    if argv[:1] == ["gpu"]:
        return gpu_main(argv[1:])
    if argv[:1] == ["knobs"]:
        from benchmarks import knobs

        return knobs.main(argv[1:], ROOT / "results")
    if argv[:1] == ["export"]:
        from benchmarks import export

        return export.main(argv[1:], ROOT / "results")
    if argv[:1] == ["load"]:
        from benchmarks import load_time

        return load_time.main(argv[1:], ROOT / "results")
    if argv[:1] == ["size"]:
        from benchmarks import keras_file_size

        return keras_file_size.main(argv[1:], ROOT / "results")
    if argv[:1] == ["lanes"]:
        from benchmarks import lanes

        return lanes.main(argv[1:], ROOT / "results")
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backends", nargs="+", default=list(BACKENDS), choices=BACKENDS)
    parser.add_argument("--models", nargs="+", default=["resnet20", "vgg16"])
    parser.add_argument("--repeats", type=int, default=7, help="timed steps per model (median)")
    parser.add_argument(
        "--no-memory", dest="memory", action="store_false", help="skip peak-memory probes (one process per variant)"
    )
    parser.add_argument("--update", action="store_true", help="keep the other backends' results from --out")
    parser.add_argument(
        "--readme", help="page whose bench-table is rewritten (default: docs/performance.md when --out is the default)"
    )
    parser.add_argument("--out", default=str(ROOT / "results"))
    args = parser.parse_args(argv)
    out = Path(args.out)
    previous = out / "results.json"
    results = collect(args, json.loads(previous.read_text()) if args.update and previous.exists() else None)
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(results, indent=1))
    (out / "results.md").write_text(markdown(results))
    plot(results, out / "results.png")
    readme = args.readme or (README if out.resolve() == (ROOT / "results").resolve() else None)
    if readme:
        update_readme(Path(readme), markdown(results))
    print(markdown(results))


def update_readme(path, table):
    """Replace the text between the bench-table markers of `path` with `table`."""
    start, end = TABLE_MARKERS
    text = path.read_text()
    head, rest = text.split(start, 1)
    path.write_text(head + start + table + end + rest.split(end, 1)[1])


if __name__ == "__main__":
    main()
