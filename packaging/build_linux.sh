#!/usr/bin/env bash
# Build the Linux bundle of Nibble Studio from a checkout:
#   dist/Nibble Studio/                              one folder: run "dist/Nibble Studio/nibble-studio"
#   dist/nibble-studio-<version>-linux-x86_64.tar.gz that folder, for users
# Steps: kernel fatbins with nvcc (resources/kernels/), PyInstaller (packaging/nibble_studio.spec), desktop
# entry + icon, tar.gz, then the bundle's --self-test in a clean environment.
# Environment: PYTHON (default python3), NIBBLE_SKIP_KERNELS=1 (no nvcc: bundle without fatbins, GPU users then
# need nvcc or get the reference path), NIBBLE_SKIP_SELFTEST=1.
# Needs the app's dependencies importable by $PYTHON (pip install -e ".[packaging]"); installs only pyinstaller.
set -euo pipefail
REPO="$(cd "$(dirname "$0")/.." && pwd)"
cd "$REPO"
PY="${PYTHON:-python3}"
APP="Nibble Studio"
VERSION="$("$PY" -c "from gpu.version import __version__; print(__version__)")"
started=$SECONDS

"$PY" -c "import torch, diffusers, transformers, PySide6, appdirs, safetensors" || {
  echo "error: the app's dependencies are not importable by $PY (pip install -e \".[packaging]\")" >&2; exit 2; }
"$PY" -c "import PyInstaller" 2>/dev/null || "$PY" -m pip install -q "pyinstaller>=6"

# Qt's xcb platform plugin needs these X libraries; PyInstaller bundles them only when installed here (many
# desktops lack libxcb-cursor0: without it in the bundle the window does not open there).
for lib in libxcb-cursor.so.0 libxcb-icccm.so.4 libxcb-keysyms.so.1 libxkbcommon-x11.so.0; do
  ldconfig -p 2>/dev/null | grep -q "$lib" || echo "warning: $lib missing at build time (apt-get install -y" \
    "libxcb-cursor0 libxcb-icccm4 libxcb-keysyms1 libxcb-image0 libxcb-render-util0 libxkbcommon-x11-0)" >&2
done

echo "== 1/4 kernel fatbins (nvcc) -> resources/kernels/"
export NIBBLE_SKIP_KERNELS="${NIBBLE_SKIP_KERNELS:-0}"  # the spec reads it: kernels all checked, or all left out
if [ "$NIBBLE_SKIP_KERNELS" = "1" ]; then
  echo "   skipped (NIBBLE_SKIP_KERNELS=1): the bundle ships no prebuilt kernels (resources/kernels is left out)"
else
  "$PY" packaging/build_kernels.py --out resources/kernels
fi

echo "== 2/4 PyInstaller (one folder, windowed)"
rm -rf "dist/$APP"
"$PY" -m PyInstaller --noconfirm --clean --log-level WARN --distpath dist --workpath build/pyinstaller \
  packaging/nibble_studio.spec

ls "dist/$APP/_internal/libxcb-cursor.so.0" >/dev/null 2>&1 || echo "warning: libxcb-cursor.so.0 not bundled" >&2

echo "== 3/4 desktop entry, icon, tar.gz"
cp packaging/nibble-studio.desktop resources/icons/nibble-studio.png packaging/install-desktop-entry.sh "dist/$APP/"
chmod +x "dist/$APP/install-desktop-entry.sh" "dist/$APP/nibble-studio"
TAR="dist/nibble-studio-$VERSION-linux-x86_64.tar.gz"
tar -C dist -czf "$TAR" "$APP"
echo "   bundle $(du -sh "dist/$APP" | cut -f1) in $(find "dist/$APP" -type f | wc -l) files; $TAR $(du -h "$TAR" | cut -f1)"

echo "== 4/4 self-test of the bundle (clean environment, temporary HOME)"
if [ "${NIBBLE_SKIP_SELFTEST:-0}" = "1" ]; then
  echo "   skipped (NIBBLE_SKIP_SELFTEST=1)"
else
  home="$(mktemp -d)"
  (cd "$home" && env -i HOME="$home" XDG_DATA_HOME="$home/.local/share" XDG_CACHE_HOME="$home/.cache" \
      XDG_CONFIG_HOME="$home/.config" PATH=/usr/bin:/bin QT_QPA_PLATFORM=offscreen \
      "$REPO/dist/$APP/nibble-studio" --self-test)
  rm -rf "$home"
fi
echo "done in $((SECONDS - started)) s: dist/$APP/nibble-studio"
