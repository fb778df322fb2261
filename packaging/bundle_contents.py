"""What goes into the Nibble Studio bundle: the one place the PyInstaller spec and the tests read it from.

Cheap to import (no PyInstaller, no torch): ``tests/test_packaging.py`` checks these lists in CI."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
APP_TITLE = "Nibble Studio"  # bundle folder, window title, Windows product name
EXE_NAME = "nibble-studio"  # Linux executable; Windows gets "Nibble Studio.exe" + a console "nibble-studio-cli.exe"
CLI_EXE_NAME = "nibble-studio-cli"

CONTENTS_DIR = "_internal"  # PyInstaller 6's folder beside the executable, holding everything else
# Windows' 260-character path limit: unzipped on a OneDrive desktop, C:\Users\Zoë Müller\OneDrive\Desktop\ (37
# characters) + Explorer's folder named after the zip (32) + "Nibble Studio\" (14) come before every path in the
# app folder, leaving it 176 (MAX_PATH counts the final NUL): torch's nested license files (181) could not be
# extracted. 120 keeps room for a longer user name or folder.
MAX_BUNDLE_PATH = 120
KERNELS_DIR = "kernels"  # resources/kernels/: the prebuilt fatbins of packaging/build_kernels.py
SKIP_KERNELS_ENV = "NIBBLE_SKIP_KERNELS"  # "1": a bundle without prebuilt kernels (build_windows.ps1 -SkipKernels)
# Folders/files of resources/ that are not shipped: README screenshots, half-written model parts, build logs.
RESOURCE_SKIP_DIRS = {"screenshots"}
RESOURCE_SKIP_SUFFIXES = {".parts", ".tmp", ".pyc"}
# What must be in the bundle for the app to work out of the box (relative to resources/).
REQUIRED_RESOURCES = (
    "models/demo/model_index.json",
    "models/demo/nibble.json",
    "judge/judge.safetensors",
    "judge/config.json",
    "calibration_prompts.txt",
    "icons/nibble-studio.png",
)

# Python packages never needed at run time (test/dev tools, notebooks, other frameworks).
EXCLUDES = [
    "tkinter", "_tkinter", "matplotlib", "IPython", "ipykernel", "jupyter", "notebook", "pytest", "_pytest",
    "pytestqt", "pandas", "sklearn", "scipy", "torchvision", "torchaudio", "tensorboard", "tensorflow", "jax",
    "flax", "cv2", "onnx", "onnxruntime", "PyInstaller", "ruff", "setuptools", "pip", "wheel",
    "torch.utils.tensorboard", "tests",
    # pulled in through optional imports of transformers/huggingface_hub; the app never downloads anything
    "botocore", "boto3", "s3transfer", "hf_xet", "libcst", "cryptography", "OpenSSL",
    # a test tool, reached through torch.testing._internal and pydantic.v1's plugin; nothing imports it at run time
    "hypothesis", "_hypothesis_globals", "_hypothesis_ftz_detector",
]  # fmt: skip
# Distributions of EXCLUDES whose .dist-info folders PyInstaller copies all the same: the transformers hook copies
# every installed distribution its dependency table names (scipy, libcst), and PyInstaller's own scan copies what a
# collected module asks importlib.metadata about (torch.testing._internal.hypothesis_utils: hypothesis). Their code
# is not in the bundle, and transformers asks find_spec before it reads a version, so the folders only mislead.
UNSHIPPED_METADATA = ("hypothesis", "scipy", "libcst")
# Bundle paths (forward slashes) dropped after analysis: headers, static libraries, CMake files, test programs,
# the metadata of UNSHIPPED_METADATA and a stray CUDA runtime.
STRIP_PATTERNS = [r"^torch/include/", r"^torch/share/", r"\.a$", r"\.lib$", r"\.h$", r"\.hpp$", r"\.cuh$",
                  r"^torch/test/", r"/tests?/.*\.py$",
                  # torch's C++ test programs and test-only libraries (50 MiB); torch_shm_manager is needed
                  r"^torch/bin/(?!torch_shm_manager)", r"^torch/lib/lib\w*test\w*\.(so|dll)$",
                  r"^torch/lib/(lib)?(backend_with_compiler|aoti_custom_ops)\.(so|dll)$",
                  rf"^({'|'.join(UNSHIPPED_METADATA)})-[^/]+\.dist-info/",
                  # The unversioned development link of the build machine's CUDA toolkit, found through a
                  # ctypes.CDLL("libcudart.so") in a deprecated transformers function that falls back to
                  # torch.version.cuda when it is missing. Libraries link the versioned name (libcudart.so.12), and
                  # CUDA torch's own runtime lies under nvidia/cuda_runtime/lib/: neither is matched.
                  r"^libcudart\.so$"]  # fmt: skip
# transformers ships hundreds of model families; FLUX needs CLIP and T5 text encoders (+ auto classes).
TRANSFORMERS_MODELS = {"auto", "clip", "t5"}
# Distributions whose metadata (importlib.metadata.version) the libraries check at import time.
METADATA = ["torch", "diffusers", "transformers", "accelerate", "safetensors", "huggingface_hub", "tokenizers",
            "numpy", "pillow", "regex", "tqdm", "filelock", "packaging", "pyyaml", "requests", "sentencepiece",
            "protobuf", "appdirs", "pycuda", "PySide6_Essentials", "nibble-studio"]  # fmt: skip


def version() -> str:
    text = (REPO / "gpu" / "version.py").read_text()
    return re.search(r'__version__ = "([^"]+)"', text).group(1)


class BundleError(Exception):
    """The bundle would ship something that does not work: the build stops, saying what and how to fix it."""


def kernels_skipped(environ: Mapping[str, str] = os.environ) -> bool:
    """The build scripts' choice of a bundle without prebuilt kernels (``NIBBLE_SKIP_KERNELS=1``)."""
    return environ.get(SKIP_KERNELS_ENV, "0") == "1"


def check_kernels(folder: Path) -> None:
    """Raises ``BundleError`` unless ``folder`` holds a fatbin of every kernel family, each built from the kernel
    sources as they are now, with SASS for every packaged architecture.

    Checked here, at build time, because the bundle has no ``kernels_cu/``: the loader then cannot compare a
    fatbin's source hash and trusts it, so a stale one would run old device code under new host launch code
    (wrong images or a CUDA fault), and one family missing makes every fused path refuse. A fatbin built for
    fewer architectures (``build_kernels.py --archs 90``) cannot be loaded on the others' GPUs (no PTX to fall
    back on), where the bundle has no nvcc to build it."""
    from build_kernels import sass_archs  # beside this file: whoever imports bundle_contents has packaging/ on sys.path

    from gpu.kernels import loader  # the engine's own hash and family list (no torch import)

    problems = []
    for stem in loader.KERNEL_FAMILIES:
        fatbin = folder / f"{stem}.fatbin"
        current = loader.source_hash(stem)
        if not fatbin.is_file():
            problems.append(f"{fatbin.name} is missing")
            continue
        try:
            built_from = json.loads(fatbin.with_suffix(".json").read_text(encoding="utf-8")).get("source_hash")
        except (OSError, ValueError, AttributeError):
            problems.append(f"{stem}.json (the source hash {fatbin.name} was built from) is missing or unreadable")
            continue
        if current is None:
            problems.append(f"kernels_cu/{stem}.cu, the source of {fatbin.name}, is missing")
        elif built_from != current:
            problems.append(f"{fatbin.name} was built from older kernel sources than kernels_cu/ holds now")
        found = sass_archs(fatbin)
        lacking = [a for a in loader.fatbin_archs(stem, loader.PACKAGED_ARCHS) if f"sm_{a.rstrip('a')}" not in found]
        if lacking:
            problems.append(f"{fatbin.name} has no SASS for sm_{', sm_'.join(lacking)}")
    if problems:
        raise BundleError(
            f"The prebuilt kernels in {folder} cannot be shipped: {'; '.join(problems)}. Rebuild them with "
            f"'python packaging/build_kernels.py --out resources/kernels' (needs nvcc), or build a bundle without "
            f"prebuilt kernels with {SKIP_KERNELS_ENV}=1 (build_windows.ps1: -SkipKernels)."
        )


def resource_files(root: Path | None = None, kernels: bool = True) -> list[Path]:
    """Every file under resources/ that is shipped, as paths relative to resources/; with ``kernels`` False,
    none of the prebuilt kernels (resources/kernels/)."""
    root = root or REPO / "resources"
    out = []
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root)
        if not path.is_file():
            continue
        if rel.parts[0] in RESOURCE_SKIP_DIRS or any(Path(p).suffix in RESOURCE_SKIP_SUFFIXES for p in rel.parts):
            continue
        if not kernels and rel.parts[0] == KERNELS_DIR:
            continue
        if path.name.startswith("."):
            continue
        out.append(rel)
    return out


def resource_datas(root: Path | None = None, kernels: bool = True) -> list[tuple[str, str]]:
    """PyInstaller ``datas`` entries (source file, destination folder) for the shipped resources. With
    ``kernels``, the prebuilt kernels must be complete and current (``check_kernels``, else ``BundleError``);
    without, they are left out."""
    root = root or REPO / "resources"
    if kernels:
        check_kernels(root / KERNELS_DIR)
    return [(str(root / rel), str(Path("resources") / rel.parent)) for rel in resource_files(root, kernels)]


def is_stripped(dest: str) -> bool:
    """True when a collected file (bundle-relative destination) should be dropped."""
    dest = dest.replace("\\", "/")
    return any(re.search(p, dest) for p in STRIP_PATTERNS) or is_unused_diffusers_source(dest)


def is_unused_diffusers_source(dest: str) -> bool:
    """A source copy (``diffusers/...py``) of a diffusers module the app never runs (``diffusers_filter``).

    diffusers is collected "pyz+py" (the spec): every module compiled into the archive and its source beside it.
    The other families' pipelines are in the archive all the same (the packages' ``__init__`` import them for type
    checkers, and PyInstaller follows that), so only their sources go: 15 MiB, and the bundle's longest paths
    (``diffusers/pipelines/deprecated/stable_diffusion_attend_and_excite/...``: 122 characters, past
    ``MAX_BUNDLE_PATH``). transformers' sources all stay: it lists its model folders' files when imported (without
    ``transformers/models/encoder_decoder/`` diffusers' LoRA loading failed to import)."""
    if not (dest.startswith("diffusers/") and dest.endswith(".py")):
        return False
    return not diffusers_filter(dest[: -len(".py")].replace("/", ".").removesuffix(".__init__"))


# A distribution's third-party license files, nested as deep as its sources were (torch:
# licenses/third_party/kineto/libkineto/third_party/dynolog/.../LICENSE.txt): folded into one file per distribution.
LICENSE_FOLD = re.compile(r"^(?P<dist>[^/]+\.dist-info)/licenses/third_party/(?P<rest>.+)$")
FOLDED_LICENSES = "THIRD_PARTY_LICENSES.txt"


def kept_datas(datas: list[tuple[str, str, str]], workdir: Path) -> list[tuple[str, str, str]]:
    """The PyInstaller ``datas`` (destination, source, type) the bundle keeps: the stripped ones dropped, and each
    distribution's ``licenses/third_party/`` files replaced by ``licenses/THIRD_PARTY_LICENSES.txt`` (written under
    ``workdir``), every license under a header naming its original path: the license texts still ship, without
    paths too long for Windows (``MAX_BUNDLE_PATH``)."""
    kept, folded = [], {}
    for entry in datas:
        dest = entry[0].replace("\\", "/")
        if is_stripped(dest):
            continue
        match = LICENSE_FOLD.match(dest)
        if match:
            folded.setdefault(match["dist"], []).append((match["rest"], Path(entry[1])))
        else:
            kept.append(entry)
    for dist, files in sorted(folded.items()):
        out = workdir / "licenses" / dist / FOLDED_LICENSES
        out.parent.mkdir(parents=True, exist_ok=True)
        parts = [f"==== third_party/{rest} ====\n{src.read_text(encoding='utf-8', errors='replace')}\n"
                 for rest, src in sorted(files)]  # fmt: skip
        out.write_text("\n".join(parts), encoding="utf-8")
        kept.append((f"{dist}/licenses/{FOLDED_LICENSES}", str(out), "DATA"))
    return kept


def transformers_filter(name: str) -> bool:
    parts = name.split(".")
    return not (len(parts) >= 3 and parts[1] == "models" and parts[2] not in TRANSFORMERS_MODELS)


def diffusers_filter(name: str) -> bool:
    """All of diffusers except the pipelines of other model families (FLUX's stay) and the CLI."""
    parts = name.split(".")
    if len(parts) >= 2 and parts[1] in ("commands", "experimental"):
        return False
    return not (len(parts) >= 3 and parts[1] == "pipelines" and parts[2] not in ("flux", "pipeline_utils",
                "pipeline_loading_utils", "auto_pipeline", "onnx_utils", "transformers_loading_utils"))


def windows_version_info(template: Path | None = None) -> str:
    """The Windows version resource (PyInstaller VSVersionInfo text) with this version filled in."""
    template = template or REPO / "packaging" / "version_info.txt"
    v = version()
    nums = [int(x) for x in re.findall(r"\d+", v)[:3]] + [0]
    nums += [0] * (4 - len(nums))
    return template.read_text().replace("{VERSION}", v).replace("{VERSION_TUPLE}", ", ".join(map(str, nums[:4])))
