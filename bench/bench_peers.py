"""``make bench-peers``: agriseg against GeoDeep and geoai, same weights, same raster, on the CPU.

Every tool segments the same generated 4096^2 RGB field (``bench.common.field``) with the same
random-init DeepLabV3+/ResNet-18 (3 classes, RGB uint8 divided by 255, 512 px patches,
``bench.common.checkpoint``), 64 px overlap, 4 patches a batch where the tool has batches. Each
run is a whole fresh process (imports, model load, reading, inference, stitching, writing the
mask), timed by wall clock with the peak resident memory and the CPU time of its process tree;
tools alternate within a round (the order rotates each round) and each tool's best (lowest) wall,
RSS and CPU time over the rounds are reported. CPU time used by other processes during each run is
recorded too: on a shared machine it tells which walls are inflated.

* agriseg, ``--backend onnx`` on ``agriseg export``'s ONNX file, and ``--backend torch`` on the
  checkpoint: this project's venv.
* GeoDeep (``geodeep FIELD MODEL.onnx -t mask``, its own CLI): an ONNX file built from agriseg's
  export with what GeoDeep needs (see :func:`geodeep_onnx`). bench/.venv-peers.
* geoai (``geoai.inference.predict_geotiff``, bench/peers/run_geoai.py): the checkpoint loaded
  into segmentation_models_pytorch's DeepLabV3+. bench/.venv-peers.

The peers live in their own venv (``make bench-peers`` builds it from bench/peers/requirements*.txt)
and never become agriseg dependencies. A peer that is not installed, or fails, is skipped with a
message. Before timing, each peer's model is checked against agriseg's on a patch of the field.
Results: a table on stdout and bench/out/peers.json.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from bench.common import OUT, agriseg_cmd, checkpoint, field, peak_rss_mb

HERE = Path(__file__).resolve().parent
PEERS_PY = HERE / ".venv-peers" / "bin" / "python"
WORK = OUT / "peers"
PATCH, OVERLAP, BATCH = 512, 64, 4
TARGET_WALL = 0.8  # agriseg onnx wall / GeoDeep wall
CLASSES = ("soil", "crop", "weed")


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def export_onnx(ckpt: Path) -> Path:
    """agriseg's own export of ``ckpt`` (dynamic batch/height/width, logits out)."""
    import onnx

    path = WORK / "model.onnx"
    if path.exists():
        meta = {p.key: p.value for p in onnx.load(str(path), load_external_data=False)
                .metadata_props}
        if meta.get("agriseg.source_sha256") == sha256(ckpt):
            return path
    t = time.perf_counter()
    subprocess.run(agriseg_cmd("export", "-m", ckpt, "-o", path, "--overwrite"), check=True)
    print(f"  exported {path.name} in {time.perf_counter() - t:.1f} s", file=sys.stderr)
    return path


def geodeep_onnx(src: Path, pixel_cm: float) -> Path:
    """agriseg's ONNX export rewritten the way GeoDeep (0.9.x) reads a segmentation model.

    What GeoDeep does with it (geodeep/inference.py, geodeep.py, segmentation.py, detection.py):
    the tile side is ``inputs[0].shape[-1]``, so height and width must be fixed (512); it feeds
    one (1, 3, 512, 512) tile per run, uint8 divided by 255 as float32 (what agriseg's export
    expects too, so no normalisation goes into the graph); it zeroes outputs below
    ``seg_thresh`` and takes argmax over axis 1, so the graph ends in a softmax (probabilities,
    as GeoDeep's own segmentation models give) and ``seg_thresh`` is 0 (plain argmax, as agriseg).
    Metadata (JSON-encoded strings): model_type "Segmentor", class_names {"0": ...},
    resolution in cm/px (the raster's: otherwise GeoDeep resamples), tiles_overlap in percent of
    the tile, seg_small_segment 0 (no sieve; GeoDeep still applies a 5x5 median filter).
    """
    import onnx
    from onnx import helper

    model = onnx.load(str(src))
    g = model.graph
    (inp,), (out,) = g.input, g.output
    shape = (1, 3, PATCH, PATCH)
    for value in (inp, out):
        for dim, n in zip(value.type.tensor_type.shape.dim, shape, strict=True):
            dim.ClearField("dim_param")
            dim.dim_value = n
    del g.value_info[:]  # shapes inferred for dynamic sizes; ONNX Runtime re-infers them
    probs = "probabilities"
    g.node.append(helper.make_node("Softmax", [out.name], [probs], axis=1, name="softmax"))
    g.output.pop()
    g.output.append(helper.make_tensor_value_info(probs, onnx.TensorProto.FLOAT, shape))
    del model.metadata_props[:]
    onnx.helper.set_model_props(model, {
        "model_type": json.dumps("Segmentor"),
        "class_names": json.dumps({str(i): c for i, c in enumerate(CLASSES)}),
        "resolution": str(pixel_cm),
        "tiles_overlap": str(100.0 * OVERLAP / PATCH),
        "seg_thresh": "0.0",
        "seg_small_segment": "0",
    })
    onnx.checker.check_model(model)
    path = WORK / "model_geodeep.onnx"
    onnx.save(model, str(path))
    return path


def busy_cpu_s() -> float:
    """CPU seconds the whole machine has spent busy since boot (/proc/stat)."""
    with open("/proc/stat") as f:
        fields = [int(v) for v in f.readline().split()[1:]]
    idle = fields[3] + fields[4]  # idle, iowait
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def timed(cmd: list[str]) -> dict:
    """One whole-process run: wall, peak RSS of the tree, its CPU time, and other load.

    ``cpu_s`` is user + system time of the command and every process it waited for (rusage of
    reaped children); ``other_cpu_s`` is what the rest of the machine used meanwhile: a
    benchmark shares the CPUs with whatever else runs, and a wall time is only comparable
    when that is small.
    """
    ru0, busy0 = resource.getrusage(resource.RUSAGE_CHILDREN), busy_cpu_s()
    rss, wall = peak_rss_mb(cmd)
    ru1, busy1 = resource.getrusage(resource.RUSAGE_CHILDREN), busy_cpu_s()
    cpu = ru1.ru_utime - ru0.ru_utime + ru1.ru_stime - ru0.ru_stime
    return {"wall_s": round(wall, 2), "peak_rss_mib": round(rss, 1), "cpu_s": round(cpu, 1),
            "other_cpu_s": round(max(0.0, busy1 - busy0 - cpu), 1)}


def peer_python(py: Path, module: str) -> str | None:
    """None when ``module`` imports in the peers venv, else why not."""
    if not py.exists():
        return f"{py} does not exist (make bench-peers builds it)"
    r = subprocess.run([str(py), "-c", f"import {module}"], capture_output=True, text=True,
                       env=peer_env())
    return None if r.returncode == 0 else (r.stderr.strip().splitlines() or ["?"])[-1]


def peer_env() -> dict[str, str]:
    env = dict(os.environ)
    env.pop("PYTHONPATH", None)  # the peers venv must not see this checkout's agriseg
    env["TQDM_DISABLE"] = "1"
    return env


def verify(ckpt: Path, onnx_path: Path, gd_path: Path | None, raster: Path,
           py: Path | None) -> dict:
    """Max |difference| between agriseg's model and each peer's, on one patch of the field."""
    import onnxruntime as ort
    import rasterio
    from rasterio.windows import Window

    with rasterio.open(raster) as r:
        x = r.read(window=Window(1000, 1000, PATCH, PATCH))[None].astype(np.float32) / 255.0
    run = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    logits = run.run(None, {run.get_inputs()[0].name: x})[0]
    e = np.exp(logits - logits.max(axis=1, keepdims=True))
    probs = e / e.sum(axis=1, keepdims=True)
    report: dict = {"patch_argmax_classes": np.bincount(logits.argmax(1).ravel(),
                                                        minlength=len(CLASSES)).tolist()}
    if gd_path is not None:
        gd = ort.InferenceSession(str(gd_path), providers=["CPUExecutionProvider"])
        p = gd.run(None, {gd.get_inputs()[0].name: x})[0]
        report["geodeep_max_abs_prob_diff"] = float(np.abs(p - probs).max())
    if py is not None:
        np.save(WORK / "check_patch.npy", x)
        subprocess.run([str(py), str(HERE / "peers" / "run_geoai.py"), "check",
                        str(WORK / "check_patch.npy"), "-w", str(ckpt),
                        "-o", str(WORK / "check_geoai.npy")], check=True, env=peer_env())
        report["geoai_max_abs_logit_diff"] = float(np.abs(np.load(WORK / "check_geoai.npy")
                                                          - logits).max())
    return report


def mask_stats(path: Path, reference: Path | None) -> dict:
    import rasterio

    with rasterio.open(path) as r:
        m = r.read(1)
    out = {"class_fraction": [round(float(v), 4) for v in
                              np.bincount(m.ravel(), minlength=len(CLASSES))[:len(CLASSES)]
                              / m.size]}
    if reference is not None and reference != path:
        with rasterio.open(reference) as r:
            out["agree_with_agriseg_onnx"] = round(float((r.read(1) == m).mean()), 5)
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--peers-python", type=Path, default=PEERS_PY,
                   help="python of the venv holding geodeep and geoai-py [%(default)s]")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--size", type=int, default=4096)
    p.add_argument("--geoai-entry", choices=("predict_geotiff", "semantic_segmentation"),
                   default="predict_geotiff")
    p.add_argument("-o", "--output", type=Path, default=OUT / "peers.json")
    p.add_argument("--skip", nargs="*", default=[],
                   choices=("agriseg-onnx", "agriseg-torch", "geodeep", "geoai"))
    a = p.parse_args()
    t_all = time.perf_counter()
    WORK.mkdir(parents=True, exist_ok=True)
    py = a.peers_python.absolute()  # not resolved: a venv's python is a link to the base one

    print(f"bench-peers on {platform.machine()}, {os.cpu_count()} CPUs, "
          f"{a.size}x{a.size} RGB, DeepLabV3+/ResNet-18 (random init), patch {PATCH}, "
          f"overlap {OVERLAP}, batch {BATCH}, CPU")
    raster = field(a.size)
    ckpt = checkpoint("deeplabv3plus", "resnet18", patch_px=PATCH)
    onnx_path = export_onnx(ckpt)
    import rasterio

    with rasterio.open(raster) as r:
        pixel_cm = round(max(abs(r.transform.a), abs(r.transform.e)), 4) * 100

    skipped: dict[str, str] = {}
    gd_bin = py.parent / "geodeep"
    why = peer_python(py, "geodeep")
    if "geodeep" in a.skip:
        skipped["geodeep"] = "--skip"
    elif why:
        skipped["geodeep"] = f"not available: {why}"
    why = peer_python(py, "geoai.inference, segmentation_models_pytorch, safetensors")
    if "geoai" in a.skip:
        skipped["geoai"] = "--skip"
    elif why:
        skipped["geoai"] = f"not available: {why}"
    for tool in ("agriseg-onnx", "agriseg-torch"):
        if tool in a.skip:
            skipped[tool] = "--skip"
    gd_path = geodeep_onnx(onnx_path, pixel_cm) if "geodeep" not in skipped else None
    geoai_weights = ckpt
    if "geoai" not in skipped and a.geoai_entry == "semantic_segmentation":
        geoai_weights = WORK / "geoai_model.pth"
        subprocess.run([str(py), str(HERE / "peers" / "run_geoai.py"), "pth", "-w", str(ckpt),
                        "-o", str(geoai_weights)], check=True, env=peer_env())
    fidelity = verify(ckpt, onnx_path, gd_path, raster,
                      py if "geoai" not in skipped else None)
    print(f"  model check on one {PATCH}^2 patch: {fidelity}")

    masks = {t: WORK / f"mask_{t}.tif" for t in
             ("agriseg-onnx", "agriseg-torch", "geodeep", "geoai")}
    common = ["--batch-size", BATCH, "--overlap", OVERLAP, "--patch-size", PATCH,
              "--device", "cpu", "--overwrite"]
    cmds = {
        "agriseg-onnx": agriseg_cmd("predict", raster, "-o", masks["agriseg-onnx"],
                                    "-m", onnx_path, "--backend", "onnx", *common),
        "agriseg-torch": agriseg_cmd("predict", raster, "-o", masks["agriseg-torch"],
                                     "-m", ckpt, "--backend", "torch", *common),
        # GeoDeep's CLI: one tile per ONNX Runtime run, tile size and overlap from the model
        "geodeep": ["env", "-u", "PYTHONPATH", str(gd_bin), str(raster), str(gd_path),
                    "-t", "mask", "-o", str(masks["geodeep"]), "-q"],
        "geoai": ["env", "-u", "PYTHONPATH", "TQDM_DISABLE=1", str(py),
                  str(HERE / "peers" / "run_geoai.py"), "predict", str(raster),
                  "-w", str(geoai_weights), "-o", str(masks["geoai"]), "--entry", a.geoai_entry,
                  "--tile", str(PATCH), "--overlap", str(OVERLAP), "--batch-size", str(BATCH)],
    }
    tools = [t for t in cmds if t not in skipped]
    for t, why in skipped.items():
        print(f"  skipping {t}: {why}")
    runs: dict[str, list[dict]] = {t: [] for t in tools}
    for rnd in range(a.rounds):
        order = tools[rnd % len(tools):] + tools[:rnd % len(tools)] if tools else []
        for t in order:
            if t in skipped:
                continue
            try:
                r = timed([str(c) for c in cmds[t]])
            except RuntimeError as e:
                skipped[t] = f"failed: {str(e).strip().splitlines()[-1]}"
                print(f"  {t} FAILED, skipped from now on:\n{e}", file=sys.stderr)
                continue
            runs[t].append(r)
            print(f"  round {rnd + 1} {t:14s} {r['wall_s']:6.1f} s  {r['peak_rss_mib']:6.0f} MiB"
                  f"  CPU {r['cpu_s']:6.1f} s  other processes {r['other_cpu_s']:5.1f} CPU s",
                  flush=True)

    mpx = a.size * a.size / 1e6
    best = {}
    for t in tools:
        if not runs[t] or t in skipped:
            continue
        wall = min(r["wall_s"] for r in runs[t])
        rss = min(r["peak_rss_mib"] for r in runs[t])
        best[t] = {"wall_s": wall, "mpx_per_s": round(mpx / wall, 3), "peak_rss_mib": rss,
                   "cpu_s": min(r["cpu_s"] for r in runs[t]), "runs": runs[t],
                   "command": " ".join(map(str, cmds[t])),
                   **mask_stats(masks[t], masks["agriseg-onnx"]
                                if "agriseg-onnx" in best else None)}
    ratios = {}
    if "geodeep" in best:
        for t in ("agriseg-onnx", "agriseg-torch"):
            if t in best:
                ratios[f"{t}/geodeep wall"] = round(best[t]["wall_s"] / best["geodeep"]["wall_s"],
                                                    3)
                ratios[f"{t}/geodeep rss"] = round(best[t]["peak_rss_mib"]
                                                   / best["geodeep"]["peak_rss_mib"], 3)
    if "geoai" in best:
        for t in ("agriseg-onnx", "agriseg-torch"):
            if t in best:
                ratios[f"{t}/geoai wall"] = round(best[t]["wall_s"] / best["geoai"]["wall_s"], 3)
                ratios[f"{t}/geoai rss"] = round(best[t]["peak_rss_mib"]
                                                 / best["geoai"]["peak_rss_mib"], 3)
    target = ratios.get("agriseg-onnx/geodeep wall")

    print(f"\n{a.size}x{a.size} ({mpx:.1f} Mpx), best of {a.rounds} whole-process runs:")
    print(f"{'tool':15s} {'wall s':>8s} {'Mpx/s':>7s} {'peak RSS MiB':>13s} {'CPU s':>7s}  "
          f"mask classes (soil/crop/weed)")
    for t, b in best.items():
        frac = "/".join(f"{f:.3f}" for f in b["class_fraction"])
        agree = (f", {100 * b['agree_with_agriseg_onnx']:.2f}% = agriseg-onnx"
                 if "agree_with_agriseg_onnx" in b else "")
        print(f"{t:15s} {b['wall_s']:8.1f} {b['mpx_per_s']:7.3f} {b['peak_rss_mib']:13.0f} "
              f"{b['cpu_s']:7.1f}  {frac}{agree}")
    for k, v in ratios.items():
        print(f"  {k:28s} {v:.3f}")
    if target is not None:
        print(f"agriseg onnx wall / GeoDeep wall = {target:.3f} (target <= {TARGET_WALL}) "
              f"{'PASS' if target <= TARGET_WALL else 'FAIL'}")
    for t, why in skipped.items():
        print(f"  {t}: skipped ({why})")
    busy = [r for rs in runs.values() for r in rs
            if r["other_cpu_s"] > 0.1 * r["wall_s"] * (os.cpu_count() or 1)]
    if busy:
        print(f"WARNING: in {len(busy)} of {sum(map(len, runs.values()))} runs other processes "
              "used over 10% of the CPUs (other_cpu_s in peers.json): walls are inflated; "
              "rerun on an idle machine")

    versions = {}
    if py.exists():
        r = subprocess.run([str(py), "-m", "pip", "list", "--format", "json"],
                           capture_output=True, text=True, env=peer_env())
        if r.returncode == 0:
            wanted = {"geodeep", "geoai-py", "onnxruntime", "torch",
                      "segmentation_models_pytorch", "segmentation-models-pytorch", "rasterio",
                      "numpy"}
            versions["peers"] = {d["name"]: d["version"] for d in json.loads(r.stdout)
                                 if d["name"] in wanted}
    from importlib.metadata import version

    versions["agriseg_venv"] = {n: version(n) for n in ("agriseg", "onnxruntime", "torch",
                                                         "rasterio", "numpy")}
    git = ["git", "-C", str(HERE.parent)]
    head = subprocess.run([*git, "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    dirty = subprocess.run([*git, "status", "--porcelain", "agriseg"], capture_output=True,
                           text=True)
    versions["agriseg_commit"] = head.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")
    results = {
        "raster": {"path": str(raster), "size": a.size, "pixel_cm": pixel_cm},
        "model": {"arch": "deeplabv3plus", "encoder": "resnet18", "classes": list(CLASSES),
                  "checkpoint": str(ckpt), "onnx": str(onnx_path),
                  "geodeep_onnx": str(gd_path) if gd_path else None,
                  "geoai_entry": a.geoai_entry},
        "settings": {"patch": PATCH, "overlap": OVERLAP, "batch": BATCH, "device": "cpu",
                     "rounds": a.rounds, "cpus": os.cpu_count()},
        "model_check": fidelity, "tools": best, "ratios": ratios,
        "target": {"agriseg-onnx/geodeep wall": TARGET_WALL,
                   "pass": None if target is None else target <= TARGET_WALL},
        "skipped": skipped, "versions": versions,
        "seconds": round(time.perf_counter() - t_all, 1),
    }
    a.output.parent.mkdir(parents=True, exist_ok=True)
    a.output.write_text(json.dumps(results, indent=2))
    print(f"results written to {a.output} ({results['seconds']:.0f} s in all)")


if __name__ == "__main__":
    main()
