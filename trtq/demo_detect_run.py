"""`trtq demo --task detect`: the digits detector's folders, its weights cache, and the build that scores it by mAP.

`prepare_detect_demo(out)` writes, under `out`:

- `data/calib/` : 64 training scenes (images only; calibration needs no labels),
- `data/val/` : 200 held-out scenes (digits the training never saw) as `images/*.png` with their labels twice,
  YOLO `labels/*.txt` (class cx cy w h, normalised) and COCO `instances.json` (category ids 1-10 are the
  digits 0-9), and `classes.txt`,
- `digits_detector.ts` : the trained detector as TorchScript (what `trtq build --model` loads),
- `digits_detector.pt` : its state dict (`--model trtq.demo_detect:DigitsDetector --checkpoint ...`).

The trained weights are cached (`cache_dir()`, one file per training setting, only files trtq wrote), so a second
demo run skips the training. `run_detect_demo(out)` then runs `trtq build --task detect` on it into `out/run`.
"""

from __future__ import annotations

import json
import os
import pickle
import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from trtq.demo_detect import NUM_CLASSES, SCENE_SIZE, DigitsDetector, Scenes, TrainSettings, make_scenes

__all__ = [
    "CALIB_SCENES",
    "VAL_SCENES",
    "DetectDemoFiles",
    "DetectDemoResult",
    "cache_dir",
    "trained_detector",
    "write_scene_folder",
    "prepare_detect_demo",
    "detect_build_command",
    "run_detect_demo",
]

CALIB_SCENES = 64
VAL_SCENES = 200


def cache_dir() -> Path:
    """Where trained demo weights are kept: `$TRTQ_CACHE_DIR`, else `$XDG_CACHE_HOME/trtq`, else `~/.cache/trtq`."""
    if os.environ.get("TRTQ_CACHE_DIR"):
        return Path(os.environ["TRTQ_CACHE_DIR"])
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "trtq"


def trained_detector(
    settings: TrainSettings, cache: Path | None = None, progress: Any = None
) -> tuple[DigitsDetector, float, bool]:
    """The demo detector trained with `settings`, from the cache when it holds these settings' weights.

    Args:
        settings: the training budget and seed (the cache file is named by `settings.key()`).
        cache: the cache folder (`cache_dir()` when None); the file is `demo-detect/<key>.pt`.
        progress: passed to `train_detector`.

    Returns:
        (the model in eval mode, seconds spent training (0.0 when loaded), whether it came from the cache).
    """
    import torch

    from trtq.demo_detect import train_detector
    from trtq.files import atomic_path

    path = (cache or cache_dir()) / "demo-detect" / f"{settings.key()}.pt"
    if path.is_file():
        model = DigitsDetector()
        try:
            model.load_state_dict(torch.load(str(path), weights_only=True))
            return model.eval(), 0.0, True
        except (RuntimeError, OSError, EOFError, ValueError, pickle.UnpicklingError):
            pass  # an unreadable cache file (an older layout, a torn write): train again and replace it
    model, seconds = train_detector(settings, progress=progress)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(path) as tmp:
            torch.save(model.state_dict(), str(tmp))
    except OSError:
        pass  # a read-only home: the demo still runs, it just trains again next time
    return model, seconds, False


def write_scene_folder(
    folder: Path, scenes: Scenes, *, labels: bool = True, prefix: str = "scene"
) -> list[Path]:
    """Write scenes as PNG images (`folder/images/` with labels, else `folder/` flat) with YOLO and COCO labels.

    Returns:
        The image paths, in scene order.
    """
    from PIL import Image

    images_dir = folder / "images" if labels else folder
    images_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    coco: dict[str, Any] = {
        "images": [],
        "annotations": [],
        "categories": [{"id": k + 1, "name": str(k)} for k in range(NUM_CLASSES)],
    }
    if labels:
        (folder / "labels").mkdir(exist_ok=True)
    for i, image in enumerate(scenes.images):
        name = f"{prefix}_{i:04d}"
        path = images_dir / f"{name}.png"
        Image.fromarray(image, mode="RGB").save(path)
        paths.append(path)
        if not labels:
            continue
        h, w = image.shape[:2]
        lines = []
        coco["images"].append({"id": i + 1, "file_name": path.name, "width": w, "height": h})
        for box, label in zip(scenes.boxes[i], scenes.labels[i]):
            x1, y1, x2, y2 = (float(v) for v in box)
            lines.append(
                f"{int(label)} {(x1 + x2) / 2 / w:.6f} {(y1 + y2) / 2 / h:.6f} {(x2 - x1) / w:.6f} {(y2 - y1) / h:.6f}"
            )
            coco["annotations"].append({
                "id": len(coco["annotations"]) + 1, "image_id": i + 1, "category_id": int(label) + 1,
                "bbox": [x1, y1, x2 - x1, y2 - y1], "area": (x2 - x1) * (y2 - y1), "iscrowd": 0,
            })  # fmt: skip
        (folder / "labels" / f"{name}.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    if labels:
        (folder / "instances.json").write_text(json.dumps(coco), encoding="utf-8")
        (folder / "classes.txt").write_text(
            "\n".join(str(k) for k in range(NUM_CLASSES)) + "\n", encoding="utf-8"
        )
    return paths


@dataclass
class DetectDemoFiles:
    """What `prepare_detect_demo` wrote, and how the model was obtained."""

    root: Path
    model: Path
    state_dict: Path
    calib: Path
    val: Path
    train_seconds: float
    from_cache: bool
    settings: TrainSettings = field(default_factory=TrainSettings)


def prepare_detect_demo(
    out: str | os.PathLike,
    settings: TrainSettings | None = None,
    *,
    cache: Path | None = None,
    calib_scenes: int | None = None,
    val_scenes: int | None = None,
    progress: Any = None,
) -> DetectDemoFiles:
    """Write the detection demo's data folders and trained model under `out` (see the module doc).

    `calib_scenes` and `val_scenes` default to `CALIB_SCENES` and `VAL_SCENES`.
    """
    import torch

    from trtq.files import atomic_path

    settings = settings or TrainSettings()
    root = Path(out)
    model, seconds, cached = trained_detector(settings, cache, progress)
    calib = root / "data" / "calib"
    val = root / "data" / "val"
    n_calib = CALIB_SCENES if calib_scenes is None else calib_scenes
    n_val = VAL_SCENES if val_scenes is None else val_scenes
    write_scene_folder(calib, make_scenes(n_calib, seed=settings.seed + 1000), labels=False, prefix="calib")
    write_scene_folder(val, make_scenes(n_val, held_out=True, seed=settings.seed), prefix="val")
    ts_path, sd_path = root / "digits_detector.ts", root / "digits_detector.pt"
    with atomic_path(ts_path) as tmp:
        torch.jit.save(torch.jit.trace(model, torch.zeros(1, 3, SCENE_SIZE, SCENE_SIZE)), str(tmp))
    with atomic_path(sd_path) as tmp:
        torch.save(model.state_dict(), str(tmp))
    return DetectDemoFiles(root, ts_path, sd_path, calib, val, seconds, cached, settings)


def detect_build_command(
    files: DetectDemoFiles, out: Path, calib: str = "entropy", disable_rules: tuple[str, ...] = ()
) -> list[str]:
    """The `trtq build` command line the demo runs (printed so users can run it themselves)."""
    cmd = [
        "trtq", "build", "--model", str(files.model), "--task", "detect", "--decoder", "yolov8",
        "--preset", "yolo", "--size", str(SCENE_SIZE), "--calib", calib, "--calib-data", str(files.calib),
        "--eval-data", str(files.val), "--out", str(out),
    ]  # fmt: skip
    for name in disable_rules:
        cmd += ["--disable-rule", name]
    return cmd


@dataclass
class DetectDemoResult:
    """What `run_detect_demo` did: the demo files, the `trtq build` result, and the command that repeats it."""

    files: DetectDemoFiles
    build: Any
    command: list[str]

    def to_json(self) -> dict[str, Any]:
        return {
            **self.build.to_json(),
            "demo": {
                "task": "detect",
                "train_seconds": round(self.files.train_seconds, 2),
                "weights_from_cache": self.files.from_cache,
                "training": self.files.settings.key(),
                "command": self.command,
            },
        }

    def text(self) -> str:
        """The lines `trtq demo --task detect` prints before the build's summary."""
        how = (
            "loaded from the cache"
            if self.files.from_cache
            else f"trained in {self.files.train_seconds:.1f} s"
        )
        return f"demo detector {how}; same build by hand:\n  {shlex.join(self.command)}"


def run_detect_demo(
    out: str | os.PathLike,
    *,
    calib: str = "entropy",
    force: bool = False,
    seed: int = 0,
    settings: TrainSettings | None = None,
    disable_rules: tuple[str, ...] = (),
    cache: Path | None = None,
    **build_overrides: Any,
) -> DetectDemoResult:
    """Prepare the detection demo under `out/demo` and build it with `task="detect"` into `out/run`.

    Args:
        out: the demo folder (refused if it holds files trtq did not write; `force` replaces an earlier demo).
        calib: the calibration method.
        force: replace an earlier demo folder.
        seed: the training and scene seed (and the build's).
        settings: the training budget (`TrainSettings(seed=seed)` by default; tests pass a small one).
        disable_rules: placement rules to turn off (e.g. `("DetectionHead",)` to measure what it is worth).
        cache: the weights cache folder (`cache_dir()` when None).
        **build_overrides: more `trtq.build` settings (`max_drop`, `metric`, ...).
    """
    from dataclasses import replace

    from trtq.pipeline import build
    from trtq.placement import PlacementConfig
    from trtq.rundir import finish_in_place, prepare_out_dir, record

    settings = replace(settings, seed=seed) if settings is not None else TrainSettings(seed=seed)
    root = prepare_out_dir(out, force, command="demo")
    record(root / "demo")  # the demo's own files, before the first one is written
    files = prepare_detect_demo(root / "demo", settings, cache=cache)
    result = build(
        str(files.model), calib_data=str(files.calib), eval_data=str(files.val), out=root / "run", calib=calib,
        task="detect", decoder="yolov8", preset="yolo", preprocess={"size": SCENE_SIZE}, seed=seed,
        placement=PlacementConfig(disable_rules=tuple(disable_rules)), **build_overrides,
    )  # fmt: skip
    finish_in_place(root)
    return DetectDemoResult(files, result, detect_build_command(files, root / "run", calib, disable_rules))
