"""Packaging invariants (cheap; PyInstaller itself never runs in CI).

The bundle's own self-test runs only when ``NIBBLE_BUNDLE_DIR`` names a built bundle folder
(``packaging/build_linux.sh`` runs it anyway)."""

from __future__ import annotations

import ast
import configparser
import json
import os
import struct
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "packaging"))

import bundle_contents as bc  # noqa: E402
from build_kernels import FATBIN_MAGIC, sass_archs  # noqa: E402


def test_spec_parses_and_uses_the_contents_module():
    spec = (REPO / "packaging" / "nibble_studio.spec").read_text()
    ast.parse(spec)
    for needle in ("bundle_contents", "resource_datas", "kernels_skipped", "kept_datas", "COLLECT", "console=False",
                   "version_file"):  # fmt: skip
        assert needle in spec


def test_required_resources_are_shipped_and_dev_files_are_not():
    shipped = {str(p).replace("\\", "/") for p in bc.resource_files()}
    missing = [r for r in bc.REQUIRED_RESOURCES if r not in shipped]
    assert not missing, missing
    assert not [p for p in shipped if p.startswith("screenshots/") or ".parts" in p]
    assert any(p.startswith("models/demo/transformer/") for p in shipped)
    datas = bc.resource_datas(kernels=False)  # the prebuilt kernels' check has tests of its own, below
    assert all(Path(dest).parts[0] == "resources" for _, dest in datas)


def _resources_with_kernels(root: Path) -> Path:
    """A resources tree holding a fatbin and its sidecar for every kernel family, built from today's sources."""
    from gpu.kernels import loader

    (root / "icons").mkdir(parents=True)
    (root / "icons" / "nibble-studio.png").write_bytes(b"png")
    kernels = root / "kernels"
    kernels.mkdir()
    for stem in loader.KERNEL_FAMILIES:
        archs = [int(a.rstrip("a")) for a in loader.fatbin_archs(stem, loader.PACKAGED_ARCHS)]
        (kernels / f"{stem}.fatbin").write_bytes(_fake_fatbin(archs))
        (kernels / f"{stem}.json").write_text(json.dumps({"source_hash": loader.source_hash(stem)}))
    return root


def test_current_prebuilt_kernels_are_shipped(tmp_path):
    from gpu.kernels import loader

    root = _resources_with_kernels(tmp_path / "resources")
    shipped = {Path(src).relative_to(root).as_posix() for src, _ in bc.resource_datas(root)}
    assert {f"kernels/{stem}.fatbin" for stem in loader.KERNEL_FAMILIES} <= shipped


def test_a_stale_or_partial_kernel_set_stops_the_build(tmp_path):
    """In the bundle the loader cannot compare a fatbin with its sources (no kernels_cu/) and trusts it: a stale one
    must not ship, nor a set with a family missing (every fused path would refuse)."""
    root = _resources_with_kernels(tmp_path / "resources")
    sidecar = root / "kernels" / "svdq_w4a4_gemm.json"
    sidecar.write_text(json.dumps({"source_hash": "0" * 64}))  # built before the last kernel-source edit
    with pytest.raises(bc.BundleError, match=r"svdq_w4a4_gemm\.fatbin was built from older kernel sources") as info:
        bc.resource_datas(root)
    assert "build_kernels.py" in str(info.value) and "NIBBLE_SKIP_KERNELS=1" in str(info.value)
    sidecar.unlink()
    with pytest.raises(bc.BundleError, match=r"svdq_w4a4_gemm\.json .* is missing or unreadable"):
        bc.resource_datas(root)
    (root / "kernels" / "svdq_w4a4_gemm.fatbin").unlink()
    (root / "kernels" / "svdq_fused_norm.fatbin").unlink()
    with pytest.raises(bc.BundleError, match=r"svdq_w4a4_gemm\.fatbin is missing; svdq_fused_norm\.fatbin is missing"):
        bc.resource_datas(root)
    with pytest.raises(bc.BundleError, match="svdq_quant_lora.fatbin is missing"):
        bc.resource_datas(tmp_path / "no-kernels-built")  # nvcc never ran, and the build did not say to skip


def test_a_fatbin_without_sass_for_a_packaged_arch_stops_the_build(tmp_path):
    """Built for fewer architectures (``build_kernels.py --archs 90``), a fatbin passes the source-hash check, but
    cannot be loaded on the other GPUs (SASS only, no PTX), where the bundle has no nvcc to build it."""
    root = _resources_with_kernels(tmp_path / "resources")
    (root / "kernels" / "svdq_w4a4_gemm.fatbin").write_bytes(_fake_fatbin([90]))
    (root / "kernels" / "svdq_w4a8_wgmma.fatbin").write_bytes(_fake_fatbin([80]))
    with pytest.raises(bc.BundleError) as info:
        bc.resource_datas(root)
    assert "svdq_w4a4_gemm.fatbin has no SASS for sm_75, sm_80, sm_86, sm_89; " in str(info.value)
    assert "svdq_w4a8_wgmma.fatbin has no SASS for sm_90a" in str(info.value)


def test_build_kernels_records_the_archs_each_fatbin_was_built_for(tmp_path, monkeypatch):
    """The sidecar said sm_75..120 for the wgmma family, whose fatbin holds sm_90a alone: the archs passed, not the
    ones nvcc built."""
    import build_kernels

    from gpu.kernels import loader

    def fake_build(stem, out_dir, archs):  # as loader.build_fatbin writes them
        if "120" in archs and stem == "svdq_w4a8_gemm":
            raise subprocess.CalledProcessError(1, "nvcc")
        (out_dir / f"{stem}.fatbin").write_bytes(b"")
        (out_dir / f"{stem}.json").write_text(json.dumps({"source_hash": "h", "archs": list(archs)}))
        return out_dir / f"{stem}.fatbin"

    monkeypatch.setattr(loader, "build_fatbin", fake_build)
    monkeypatch.setattr(loader, "find_nvcc", lambda: "nvcc")
    monkeypatch.setattr(loader, "nvcc_version", lambda nvcc: "Build cuda_13.0")
    recorded = {}
    for stem in ("svdq_w4a8_wgmma", "svdq_w4a4_gemm", "svdq_w4a8_gemm"):
        build_kernels.build_one(stem, tmp_path, ("75", "80", "86", "89", "90"), ("120",))
        recorded[stem] = json.loads((tmp_path / f"{stem}.json").read_text())["archs"]
    assert recorded == {"svdq_w4a8_wgmma": ["90a"], "svdq_w4a4_gemm": ["75", "80", "86", "89", "90", "120"],
                        "svdq_w4a8_gemm": ["75", "80", "86", "89", "90"]}  # fmt: skip


def test_skipping_kernels_leaves_them_all_out(tmp_path):
    root = _resources_with_kernels(tmp_path / "resources")
    (root / "kernels" / "svdq_w4a4_gemm.fatbin").unlink()  # a partial set from an aborted build: not checked
    shipped = [Path(src).relative_to(root).as_posix() for src, _ in bc.resource_datas(root, kernels=False)]
    assert shipped == ["icons/nibble-studio.png"]
    assert bc.kernels_skipped({"NIBBLE_SKIP_KERNELS": "1"})
    assert not bc.kernels_skipped({}) and not bc.kernels_skipped({"NIBBLE_SKIP_KERNELS": "0"})


def test_no_shipped_resource_is_a_pickle():
    """The engine reads safetensors only (pickles can run code when opened): nothing it would load is shipped as
    one, whatever its name."""
    from gpu.safetensors_header import is_pickle

    root = REPO / "resources"
    pickles = []
    for rel in bc.resource_files(root):
        with open(root / rel, "rb") as f:
            if is_pickle(f.read(8)) or rel.suffix in (".pkl", ".pickle", ".pt", ".pth", ".bin", ".ckpt"):
                pickles.append(rel.as_posix())
    assert not pickles


def _installed_metadata_datas() -> list[tuple[str, str, str]]:
    """What ``copy_metadata`` gives the spec for the distributions of ``bc.METADATA`` installed here: each one's
    whole .dist-info folder, under its own name."""
    from importlib import metadata

    datas = []
    for name in bc.METADATA:
        try:
            folder = Path(metadata.distribution(name)._path)  # the .dist-info folder copy_metadata copies
        except metadata.PackageNotFoundError:
            continue
        if folder.suffix != ".dist-info":  # the editable install of this repository: an .egg-info folder
            continue
        datas += [(f"{folder.name}/{p.relative_to(folder).as_posix()}", str(p), "DATA")
                  for p in folder.rglob("*") if p.is_file()]  # fmt: skip
    return datas


def _installed_source_datas() -> list[tuple[str, str, str]]:
    """The source copies PyInstaller puts beside the compiled modules of the packages collected "pyz+py" (torch's
    and transformers' hooks ask for it, the spec for diffusers): every .py file of those packages installed here,
    more than the analysis collects."""
    import importlib.util

    datas = []
    for package in ("torch", "transformers", "diffusers"):
        spec = importlib.util.find_spec(package)  # finds the folder without importing the package
        for folder in spec.submodule_search_locations if spec else ():
            root = Path(folder)
            datas += [(f"{package}/{p.relative_to(root).as_posix()}", str(p), "DATA") for p in root.rglob("*.py")]
    return datas


def test_bundle_paths_fit_windows_path_limit_after_unzipping_on_a_onedrive_desktop(tmp_path):
    """torch's license files nest 171 characters deep; the bundle keeps their texts in one file per distribution.
    diffusers' deprecated pipelines' sources went 122 deep (the real bundle, 2026-11-23): the sources of pipelines
    the app never runs are left out."""
    datas = _installed_metadata_datas() + _installed_source_datas()
    datas += [(f"{dest}/{Path(src).name}", src, "DATA") for src, dest in bc.resource_datas(kernels=False)]
    kept = bc.kept_datas(datas, tmp_path)
    lengths = sorted((len(f"{bc.CONTENTS_DIR}/{dest}"), dest) for dest, _, _ in kept)
    assert lengths[-1][0] <= bc.MAX_BUNDLE_PATH, lengths[-3:]
    folded = [(dest, src) for dest, src, _ in kept if dest.endswith("/licenses/" + bc.FOLDED_LICENSES)]
    torch_licenses = [src for dest, src in folded if dest.startswith("torch-")]
    if not torch_licenses:
        pytest.skip("this torch ships no third-party license files")
    text = Path(torch_licenses[0]).read_text(encoding="utf-8")
    nested = [dest for dest, _, _ in datas if dest.startswith("torch-") and "/licenses/third_party/" in dest]
    assert text.count("\n==== third_party/") + text.startswith("==== third_party/") == len(nested)
    assert "LICENSE" in text and "Permission" in text  # the texts themselves, not only their names


def test_stripped_and_filters():
    assert bc.is_stripped("torch/include/ATen/core/Tensor.h")
    assert bc.is_stripped("torch/lib/libfoo.a") and bc.is_stripped("torch/bin/test_api")
    assert not bc.is_stripped("torch/bin/torch_shm_manager")  # torch refuses to import without it
    assert not bc.is_stripped("torch/lib/libtorch_cpu.so")
    assert not bc.is_stripped("resources/models/demo/model_index.json")
    assert bc.transformers_filter("transformers.models.clip.modeling_clip")
    assert not bc.transformers_filter("transformers.models.bert")
    assert bc.diffusers_filter("diffusers.pipelines.flux.pipeline_flux")
    # diffusers' sources (collected "pyz+py") of pipelines the app never runs are left out; transformers' all stay
    assert bc.is_stripped("diffusers/pipelines/deprecated/stable_diffusion_attend_and_excite/__init__.py")
    assert bc.is_stripped("diffusers\\pipelines\\stable_diffusion\\pipeline_stable_diffusion.py")
    assert bc.is_stripped("diffusers/commands/env.py")
    for kept in ("diffusers/pipelines/flux/pipeline_flux.py", "diffusers/pipelines/__init__.py",
                 "diffusers/pipelines/pipeline_utils.py", "diffusers/models/transformers/transformer_flux.py",
                 "diffusers/utils/model_card_template.md", "transformers/models/bert/modeling_bert.py"):  # fmt: skip
        assert not bc.is_stripped(kept), kept
    assert not bc.diffusers_filter("diffusers.pipelines.stable_diffusion")
    assert "scipy" in bc.EXCLUDES and "torch" not in bc.EXCLUDES


def test_metadata_of_left_out_distributions_and_the_stray_cudart_are_dropped(tmp_path):
    """The 2026-11-23 bundle held the .dist-info folders of hypothesis, scipy and libcst (code not shipped; copied by
    the transformers hook and PyInstaller's metadata scan) and the build machine's toolkit ``libcudart.so`` (a
    ctypes.CDLL in a deprecated transformers function). The metadata the libraries read, and CUDA torch's own
    versioned runtime (a GPU build), stay."""
    from importlib import metadata

    left_out = ("hypothesis", "scipy", "libcst")
    stray = [(f"{folder}/{name}", __file__, "DATA") for folder in ("hypothesis-6.155.2.dist-info",
             "scipy-1.17.1.dist-info", "libcst-1.0.1.dist-info") for name in ("METADATA", "RECORD")]  # fmt: skip
    for name in left_out:  # the installed ones too, as the hook copies them
        try:
            folder = Path(metadata.distribution(name)._path)
        except metadata.PackageNotFoundError:
            continue
        stray += [(f"{folder.name}/{p.relative_to(folder).as_posix()}", str(p), "DATA") for p in folder.rglob("*")
                  if p.is_file() and "third_party" not in p.parts]  # fmt: skip
    needed = _installed_metadata_datas()
    kept = {dest for dest, _, _ in bc.kept_datas(stray + needed, tmp_path)}
    assert not kept & {dest for dest, _, _ in stray}
    assert {dest for dest, _, _ in needed if "/licenses/third_party/" not in dest} <= kept
    assert bc.is_stripped("libcudart.so")
    for binary in ("nvidia/cuda_runtime/lib/libcudart.so.12", "libcudart.so.12", "torch/lib/libtorch_cuda.so",
                   "numpy.libs/libscipy_openblas64_-32a4b2a6.so", "cudart64_12.dll"):  # fmt: skip
        assert not bc.is_stripped(binary), binary
    assert set(left_out) <= set(bc.UNSHIPPED_METADATA) <= set(bc.EXCLUDES)  # only metadata of code left out


def test_windows_version_info_is_a_valid_expression():
    text = bc.windows_version_info()
    assert "{VERSION" not in text
    from gpu.version import __version__

    assert f"'{__version__}'" in text
    tree = ast.parse(text, mode="eval")
    assert isinstance(tree.body, ast.Call) and tree.body.func.id == "VSVersionInfo"


def test_desktop_entry():
    entry = configparser.ConfigParser(interpolation=None)
    entry.optionxform = str
    entry.read(REPO / "packaging" / "nibble-studio.desktop")
    d = entry["Desktop Entry"]
    assert d["Type"] == "Application" and d["Name"] == "Nibble Studio"
    assert d["Exec"].startswith("nibble-studio") and d["Icon"] == "nibble-studio" and d["Terminal"] == "false"
    # the PNGs opened with the app from a file manager are passed to it (%F, several too), which opens them as a drop
    assert d["Exec"] == "nibble-studio %F" and d["MimeType"] == "image/png;"
    assert (REPO / "resources" / "icons" / "nibble-studio.png").is_file()
    assert (REPO / "resources" / "icons" / "nibble-studio.ico").is_file()


def _fake_fatbin(archs: list[int]) -> bytes:
    entries = b""
    for arch in archs:
        payload = b"\0" * 40
        header = struct.pack("<HHIQII", 2, 0x101, 64, len(payload), 0, 0) + struct.pack("<HHI", 0, 0, arch)
        entries += header.ljust(64, b"\0") + payload
    ptx = struct.pack("<HHIQ", 1, 0x101, 64, 8).ljust(64, b"\0") + b"\0" * 8  # a PTX entry is not SASS
    body = entries + ptx
    return struct.pack("<IHHQ", FATBIN_MAGIC, 1, 16, len(body)) + body


def test_fatbin_reader(tmp_path):
    f = tmp_path / "k.fatbin"
    f.write_bytes(_fake_fatbin([75, 90, 120, 80]))
    assert sass_archs(f) == ["sm_75", "sm_80", "sm_90", "sm_120"]


def test_built_fatbins_carry_every_packaged_arch():
    from gpu.kernels import loader

    built = sorted((REPO / "resources" / "kernels").glob("*.fatbin"))
    if not built:
        pytest.skip("no fatbins built here (packaging/build_kernels.py needs nvcc)")
    for fatbin in built:
        found = sass_archs(fatbin)
        expected = [a.rstrip("a") for a in loader.fatbin_archs(fatbin.stem, loader.PACKAGED_ARCHS)]
        assert all(f"sm_{a}" in found for a in expected), (fatbin.name, found)


def test_main_has_self_test_flag():
    sys.path.insert(0, str(REPO))
    import main

    assert main.build_parser().parse_args(["--self-test"]).self_test


def test_self_test_passes_on_the_demo_model_without_qt(tmp_path):
    """The self-test, unfrozen, in a fresh process: passes, reports the path, never imports Qt."""
    code = (
        "import sys; from gpu.self_test import main; rc = main([]); "
        "qt = [m for m in sys.modules if m.startswith('PySide6')]; "
        "print('QT-MODULES', qt); sys.exit(rc if not qt else 3)"
    )
    env = {**os.environ, "NIBBLE_DATA_DIR": str(tmp_path), "PYTHONPATH": str(REPO)}
    started = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=300)  # fmt: skip
    elapsed = time.perf_counter() - started
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "QT-MODULES []" in proc.stdout
    assert "self-test PASSED" in proc.stdout and "  execution   " in proc.stdout
    assert (tmp_path / "self-test.txt").read_text().count("PASS ") >= 5
    # ~15 s on the 2-core CI machine alone; 70 s with three other test runs beside it: the bound catches a self-test
    # that takes minutes (a user's first check of the app), not a busy machine
    assert elapsed < 150, elapsed


@pytest.mark.slow
@pytest.mark.skipif(not os.environ.get("NIBBLE_BUNDLE_DIR"), reason="set NIBBLE_BUNDLE_DIR to a built bundle")
def test_built_bundle_self_test(tmp_path):
    exe = Path(os.environ["NIBBLE_BUNDLE_DIR"]) / ("nibble-studio-cli.exe" if os.name == "nt" else "nibble-studio")
    env = {"HOME": str(tmp_path), "XDG_DATA_HOME": str(tmp_path / "data"), "XDG_CACHE_HOME": str(tmp_path / "c"),
           "PATH": "/usr/bin:/bin", "QT_QPA_PLATFORM": "offscreen"}  # fmt: skip
    proc = subprocess.run([str(exe), "--self-test"], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=600)  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "run from    bundle" in proc.stdout


def test_windows_build_script_asks_for_pyinstaller_without_redirecting_stderr():
    """Static check of build_windows.ps1 (no PowerShell here) plus a run of its probe: under
    ``$ErrorActionPreference = "Stop"``, PowerShell 5.1 turns a native program's redirected stderr into a
    terminating error, so ``python -c "import PyInstaller" 2>$null`` stopped the build where PyInstaller was missing
    instead of installing it. The probe answers through its exit status alone."""
    script = (REPO / "packaging" / "build_windows.ps1").read_text(encoding="utf-8")
    assert '$ErrorActionPreference = "Stop"' in script
    native = [line for line in script.splitlines() if line.lstrip().startswith("& ")]
    assert native and not [line for line in native if "2>" in line], native
    probe = next(line for line in native if "PyInstaller" in line and " -c " in line)
    code = probe.split(" -c ", 1)[1].strip().strip('"')
    present = subprocess.run([sys.executable, "-c", code.replace("'PyInstaller'", "'json'")], capture_output=True)
    absent = subprocess.run([sys.executable, "-c", code.replace("'PyInstaller'", "'no_such_module_x'")],
                            capture_output=True)  # fmt: skip
    assert (present.returncode, present.stderr, absent.returncode, absent.stderr) == (0, b"", 1, b"")
