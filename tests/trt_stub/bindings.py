"""Load the REAL TensorRT Python bindings without TensorRT: wheels from PyPI + stub C libraries.

The bindings wheels (`tensorrt-cu12-bindings`, `tensorrt-cu13-bindings`, about 1 MB each) hold the
compiled `tensorrt.so`, which needs only nine C entry points from libnvinfer, libnvonnxparser and
libnvinfer_plugin. `stub.c` defines those nine, each returning NULL/0; built as the three shared
libraries, they let the real module import, with every class, enum member and signature exactly as
NVIDIA shipped it. Calling a factory (`trt.Builder(logger)`) raises TypeError, so nothing can be built.

`prepare(cache_dir, version)` downloads (once, cached), unpacks, compiles and writes a one-line
`tensorrt` package that re-exports `tensorrt_bindings`, and returns the environment for a subprocess.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

HERE = Path(__file__).parent

#: version -> (PyPI distribution, major of the stub libraries' soname)
VERSIONS = {
    "10.3.0": ("tensorrt-cu12-bindings", 10),  # JetPack 6: weakly typed path
    "10.13.3.9": ("tensorrt-cu12-bindings", 10),  # 10.12+: strongly typed, still has weak typing
    "11.4.0.106": ("tensorrt-cu13-bindings", 11),  # 11.x: strongly typed only
}

_SHIM = '''"""Test shim: the real TensorRT bindings under the name `tensorrt`."""
from tensorrt_bindings import *  # noqa: F401,F403
from tensorrt_bindings import __version__  # noqa: F401
'''


class Unavailable(Exception):
    """The bindings cannot be prepared here (reason in the message)."""


def _run(cmd: list[str], cwd: Path | None = None) -> None:
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=300)
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["?"]
        raise Unavailable(f"{' '.join(cmd[:4])}... failed: {tail[0]}")


def _stub_libs(cache_dir: Path, major: int) -> Path:
    out = cache_dir / f"stub{major}"
    done = out / ".done"
    if done.exists():
        return out
    if shutil.which("gcc") is None:
        raise Unavailable("gcc is not installed (needed to compile the TensorRT stub libraries)")
    out.mkdir(parents=True, exist_ok=True)
    for lib in ("libnvinfer", "libnvonnxparser", "libnvinfer_plugin"):
        soname = f"{lib}.so.{major}"
        _run(
            [
                "gcc",
                "-shared",
                "-fPIC",
                "-o",
                str(out / soname),
                f"-Wl,-soname,{soname}",
                str(HERE / "stub.c"),
            ]
        )
    done.write_text("ok")
    return out


def prepare(cache_dir: Path, version: str) -> dict[str, str]:
    """Environment variables under which `import tensorrt` loads the real `version` bindings."""
    if sys.version_info[:2] != (3, 11):
        raise Unavailable(
            f"the pinned bindings wheels are cp311; this is Python {sys.version_info[0]}.{sys.version_info[1]}"
        )
    if not sys.platform.startswith("linux"):
        raise Unavailable("the bindings wheels and stub libraries are Linux x86_64 only")
    dist, major = VERSIONS[version]
    root = cache_dir / version
    site = root / "site"
    if not (site / "tensorrt" / "__init__.py").exists():
        wheels = root / "wheels"
        wheels.mkdir(parents=True, exist_ok=True)
        found = list(wheels.glob("*.whl"))
        if not found:
            _run(
                [
                    sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "--quiet",
                    "--disable-pip-version-check", "-d", str(wheels), f"{dist}=={version}",
                ]
            )  # fmt: skip
            found = list(wheels.glob("*.whl"))
        if not found:
            raise Unavailable(f"pip download {dist}=={version} produced no wheel")
        tmp = root / "site.tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        with zipfile.ZipFile(found[0]) as z:
            z.extractall(tmp)
        (tmp / "tensorrt").mkdir(exist_ok=True)
        (tmp / "tensorrt" / "__init__.py").write_text(_SHIM)
        shutil.rmtree(site, ignore_errors=True)
        tmp.rename(site)
    libs = _stub_libs(cache_dir, major)
    env = dict(os.environ)
    repo = str(HERE.parent.parent)
    env["PYTHONPATH"] = os.pathsep.join([str(site), repo, env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    env["LD_LIBRARY_PATH"] = os.pathsep.join([str(libs), env.get("LD_LIBRARY_PATH", "")]).rstrip(os.pathsep)
    return env


def run_probe(env: dict[str, str], request: dict) -> dict:
    """Run probe.py with the bindings; returns its JSON answer."""
    import json

    proc = subprocess.run(
        [sys.executable, str(HERE / "probe.py")],
        input=json.dumps(request),
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"probe failed (rc {proc.returncode}):\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout)
