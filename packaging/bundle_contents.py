"""What goes into the Nibble Studio bundle: the one place the PyInstaller spec and the tests read it from.

Cheap to import (no PyInstaller, no torch): ``tests/test_packaging.py`` checks these lists in CI."""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
APP_TITLE = "Nibble Studio"  # bundle folder, window title, Windows product name
EXE_NAME = "nibble-studio"  # Linux executable; Windows gets "Nibble Studio.exe" + a console "nibble-studio-cli.exe"
CLI_EXE_NAME = "nibble-studio-cli"

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
]  # fmt: skip
# Bundle paths (forward slashes) dropped after analysis: headers, static libraries, CMake files.
STRIP_PATTERNS = [r"^torch/include/", r"^torch/share/", r"\.a$", r"\.lib$", r"\.h$", r"\.hpp$", r"\.cuh$",
                  r"^torch/test/", r"/tests?/.*\.py$",
                  # torch's C++ test programs and test-only libraries (50 MiB); torch_shm_manager is needed
                  r"^torch/bin/(?!torch_shm_manager)", r"^torch/lib/lib\w*test\w*\.(so|dll)$",
                  r"^torch/lib/(lib)?(backend_with_compiler|aoti_custom_ops)\.(so|dll)$"]  # fmt: skip
# transformers ships hundreds of model families; FLUX needs CLIP and T5 text encoders (+ auto classes).
TRANSFORMERS_MODELS = {"auto", "clip", "t5"}
# Distributions whose metadata (importlib.metadata.version) the libraries check at import time.
METADATA = ["torch", "diffusers", "transformers", "accelerate", "safetensors", "huggingface_hub", "tokenizers",
            "numpy", "pillow", "regex", "tqdm", "filelock", "packaging", "pyyaml", "requests", "sentencepiece",
            "protobuf", "appdirs", "pycuda", "PySide6_Essentials", "nibble-studio"]  # fmt: skip


def version() -> str:
    text = (REPO / "gpu" / "version.py").read_text()
    return re.search(r'__version__ = "([^"]+)"', text).group(1)


def resource_files(root: Path | None = None) -> list[Path]:
    """Every file under resources/ that is shipped, as paths relative to resources/."""
    root = root or REPO / "resources"
    out = []
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root)
        if not path.is_file():
            continue
        if rel.parts[0] in RESOURCE_SKIP_DIRS or any(Path(p).suffix in RESOURCE_SKIP_SUFFIXES for p in rel.parts):
            continue
        if path.name.startswith("."):
            continue
        out.append(rel)
    return out


def resource_datas(root: Path | None = None) -> list[tuple[str, str]]:
    """PyInstaller ``datas`` entries (source file, destination folder) for the shipped resources."""
    root = root or REPO / "resources"
    return [(str(root / rel), str(Path("resources") / rel.parent)) for rel in resource_files(root)]


def is_stripped(dest: str) -> bool:
    """True when a collected file (bundle-relative destination) should be dropped."""
    dest = dest.replace("\\", "/")
    return any(re.search(p, dest) for p in STRIP_PATTERNS)


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
