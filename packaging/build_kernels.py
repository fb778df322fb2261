"""Build the prebuilt kernel binaries that the bundle ships: one fatbin per kernel family.

    python packaging/build_kernels.py [--out resources/kernels] [--archs 75,80,86,89,90] [--jobs N]

Every family the loader knows (``gpu.kernels.loader.KERNEL_FAMILIES``) whose ``kernels_cu/<stem>.cu`` exists
is compiled with nvcc (``loader.build_fatbin``: same options as the run-time build, SASS for each arch, plus the
``<stem>.json`` sidecar with the source hash) for sm_75/80/86/89/90 and, when this nvcc knows it, sm_120.
If sm_120 does not compile for a family, that family is rebuilt without it (and the script says so).
Afterwards the SASS architectures inside each fatbin are read back from its headers and printed.

Exit status: 0 when every family was built, 1 otherwise; 2 when nvcc is missing.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from gpu.kernels import loader  # noqa: E402

OPTIONAL_ARCHS = ("120",)  # built when nvcc supports them and the code compiles for them


def nvcc_archs(nvcc: str) -> set[str]:
    out = subprocess.run([nvcc, "--list-gpu-arch"], capture_output=True, text=True, check=False).stdout
    return {line.strip().removeprefix("compute_") for line in out.split()}


FATBIN_MAGIC = 0xBA55ED50


def sass_archs(fatbin: Path) -> list[str]:
    """Architectures with SASS (ELF entries) in a fatbin file, read from its container headers.

    Layout (as written by nvcc/fatbinary): per container a 16-byte header (magic, version, header size,
    payload size), then entries, each with its own header: kind (1 PTX, 2 ELF) at +0, header size at +4,
    payload size at +8, sm version at +28."""
    import struct

    data = fatbin.read_bytes()
    found: set[str] = set()
    pos = 0
    while pos + 16 <= len(data):
        magic, _, header, size = struct.unpack_from("<IHHQ", data, pos)
        if magic != FATBIN_MAGIC:
            break
        entry, stop = pos + header, pos + header + size
        while entry + 32 <= stop:
            kind, _, entry_header, entry_size = struct.unpack_from("<HHIQ", data, entry)
            if kind == 2:
                found.add(f"sm_{struct.unpack_from('<I', data, entry + 28)[0]}")
            entry += entry_header + entry_size
        pos = stop
    return sorted(found, key=lambda a: int(a[3:]))


def build_one(stem: str, out: Path, archs: tuple[str, ...], optional: tuple[str, ...]) -> tuple[str, str]:
    started = time.perf_counter()
    built = archs + optional
    try:
        path = loader.build_fatbin(stem, out, built)
        note = ""
    except subprocess.CalledProcessError:
        if not optional:
            raise
        built = archs
        path = loader.build_fatbin(stem, out, built)
        note = f" (sm_{'/'.join(optional)} does not compile for this family: left out)"
    sidecar = path.with_suffix(".json")
    meta = json.loads(sidecar.read_text())
    meta["archs"] = list(loader.fatbin_archs(stem, built))  # what nvcc built: ["90a"] for the wgmma family
    meta["nvcc"] = loader.nvcc_version(loader.find_nvcc())
    sidecar.write_text(json.dumps(meta, indent=1))
    size = path.stat().st_size / 2**20
    return stem, f"{path.name}: {size:.1f} MiB, {time.perf_counter() - started:.0f} s{note}"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=REPO / "resources" / "kernels")
    ap.add_argument("--archs", default=",".join(loader.PACKAGED_ARCHS), help="required archs (comma-separated)")
    ap.add_argument("--jobs", type=int, default=3)
    args = ap.parse_args(argv)
    nvcc = loader.find_nvcc()
    if nvcc is None:
        print("error: nvcc not found (set CUDA_HOME or put nvcc on the PATH)", file=sys.stderr)
        return 2
    archs = tuple(a.strip() for a in args.archs.split(",") if a.strip())
    optional = tuple(a for a in OPTIONAL_ARCHS if a in nvcc_archs(nvcc) and a not in archs)
    stems = [s for s in loader.KERNEL_FAMILIES if (loader.source_dir() / f"{s}.cu").exists()]
    missing = [s for s in loader.KERNEL_FAMILIES if s not in stems]
    print(f"nvcc {loader.nvcc_version(nvcc)} ({nvcc}); families {', '.join(stems)}; "
          f"archs sm_{', sm_'.join(archs + optional)}", flush=True)
    for stale in args.out.glob("*.fatbin"):
        if stale.stem not in stems:
            stale.unlink()
            stale.with_suffix(".json").unlink(missing_ok=True)
    failed = list(missing)
    with ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        futures = {s: pool.submit(build_one, s, args.out, archs, optional) for s in stems}
        for stem, fut in futures.items():
            try:
                print("  " + fut.result()[1], flush=True)
            except Exception as err:  # report every family, then fail
                print(f"  {stem}: FAILED ({err})", flush=True)
                failed.append(stem)
    for stem in stems:
        fatbin = args.out / f"{stem}.fatbin"
        if fatbin.exists():
            print(f"  {fatbin.name} SASS: {', '.join(sass_archs(fatbin)) or 'none found'}")
    if failed:
        print(f"error: no fatbin for {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
