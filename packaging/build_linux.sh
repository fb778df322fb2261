#!/usr/bin/env bash
# Build the Linux bundle of Nibble Studio from a checkout:
#   dist/Nibble Studio/                              one folder: run "dist/Nibble Studio/nibble-studio"
#   dist/nibble-studio-<version>-linux-x86_64.tar.gz that folder, for users
# Steps: kernel fatbins with nvcc (resources/kernels/), PyInstaller (packaging/nibble_studio.spec), desktop
# entry + icon, tar.gz, then the bundle's --self-test in a clean environment.
# Environment: PYTHON (default python3), NIBBLE_SKIP_KERNELS=1 (no nvcc: bundle without fatbins, GPU users then
# need nvcc or get the reference path), NIBBLE_SKIP_SELFTEST=1, NIBBLE_ALLOW_MISSING_X=1 (build although X
# libraries Qt's xcb plugin needs are missing here: that bundle opens no window where the desktop lacks them).
# Needs the app's dependencies importable by $PYTHON (pip install -e ".[packaging]"); installs only pyinstaller.
# Sourcing this file (tests/test_build_linux_checks.py) only defines the checks below; running it builds.

# Qt's xcb platform plugin needs these X libraries (Debian/Ubuntu package:soname; packaging/README.md lists the
# same packages). PyInstaller bundles them only when they are installed here; many desktops lack some
# (libxcb-cursor0: Qt >= 6.5 cannot open a window without it), and the self-test runs offscreen, so a bundle
# without them passes here and then dies on the user's desktop ("Could not load the Qt platform plugin xcb").
X_LIBRARIES=(libxcb-cursor0:libxcb-cursor.so.0 libxcb-icccm4:libxcb-icccm.so.4 libxcb-keysyms1:libxcb-keysyms.so.1
  libxcb-image0:libxcb-image.so.0 libxcb-render-util0:libxcb-render-util.so.0 libxkbcommon-x11-0:libxkbcommon-x11.so.0)

# x_problem MESSAGE: an error that stops the build, or with NIBBLE_ALLOW_MISSING_X=1 a warning saying the risk.
x_problem() {
  if [ "${NIBBLE_ALLOW_MISSING_X:-0}" = "1" ]; then
    echo "warning: $1. Building anyway (NIBBLE_ALLOW_MISSING_X=1): this bundle opens no window on desktops that" \
      "lack these libraries (\"Could not load the Qt platform plugin xcb\"), without a message." >&2
    return 0
  fi
  echo "error: $1. Without them the bundle's window does not open on desktops that lack them; set" \
    "NIBBLE_ALLOW_MISSING_X=1 to build anyway (for a headless or CLI-only bundle)." >&2
  return 1
}

# check_x_libraries: before PyInstaller, every library of X_LIBRARIES is installed on this machine.
check_x_libraries() {
  local ldconfig known entry missing=() packages=()
  ldconfig="$(command -v ldconfig || echo /sbin/ldconfig)"  # Debian keeps it out of a user's PATH
  known="$("$ldconfig" -p 2>/dev/null)" || { x_problem "cannot list the installed libraries ($ldconfig -p failed)"
                                             return; }
  for entry in "${X_LIBRARIES[@]}"; do
    grep -qF "${entry#*:} " <<<"$known" || { missing+=("${entry#*:}"); packages+=("${entry%%:*}"); }
  done
  [ ${#missing[@]} -eq 0 ] || x_problem "the X libraries ${missing[*]} are not installed on this build machine, so\
 PyInstaller cannot put them in the bundle (install them: sudo apt-get install -y ${packages[*]})"
}

# check_bundled_xcb FOLDER: after PyInstaller, the bundle FOLDER holds Qt's xcb platform plugin and the X libraries
# of X_LIBRARIES, and ldd (finding libraries as the bundle does: its _internal/ first) resolves every library the
# plugin needs.
check_bundled_xcb() {
  local internal="$1/_internal" entry lib plugin qpa out line missing=() unresolved="" rc=0
  plugin="$(find -L "$internal" -name libqxcb.so -print -quit 2>/dev/null || true)"
  qpa="$(find -L "$internal" -name libQt6XcbQpa.so.6 -print -quit 2>/dev/null || true)"
  if [ -z "$plugin" ] || [ -z "$qpa" ]; then
    x_problem "Qt's xcb platform plugin (libqxcb.so and libQt6XcbQpa.so.6) is not in $internal"
    return
  fi
  for entry in "${X_LIBRARIES[@]}"; do
    [ -n "$(find -L "$internal" -name "${entry#*:}" -print -quit)" ] || missing+=("${entry#*:}")
  done
  for lib in "$plugin" "$qpa"; do
    out="$(LD_LIBRARY_PATH="$internal:$(dirname "$qpa")" ldd "$lib" 2>&1 || true)"
    while read -r line; do  # "<soname> => not found", once per library that needs it: each named once
      [[ " $unresolved " == *" ${line%% *} "* ]] || unresolved+="${unresolved:+ }${line%% *}"
    done < <(grep "not found" <<<"$out")
  done
  [ ${#missing[@]} -eq 0 ] || x_problem "the bundle lacks the X libraries ${missing[*]}" || rc=1
  [ -z "$unresolved" ] || x_problem "ldd finds libraries Qt's xcb plugin needs nowhere: $unresolved" || rc=1
  return $rc
}

# check_bundle_paths FOLDER LIMIT: no path inside the app folder FOLDER is longer than LIMIT characters
# (bundle_contents.MAX_BUNDLE_PATH: the Windows bundle holds the same Python packages, and Windows' path limit is
# near once its zip is unpacked on a OneDrive desktop). tests/test_packaging.py checks the files it can foresee;
# this sees what PyInstaller really collected.
check_bundle_paths() {
  local long
  long="$(cd "$1" && find . -mindepth 1 | cut -c3- | awk -v max="$2" 'length($0) > max {print length($0) ": " $0}' \
    | sort -rn | head -5)"
  [ -z "$long" ] || { echo "error: paths in the bundle longer than $2 characters, too long for Windows once the" \
    "zip is unpacked on a OneDrive desktop (leave them out in packaging/bundle_contents.py):" >&2
                      echo "$long" >&2; return 1; }
}

main() {
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

check_x_libraries

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

check_bundled_xcb "dist/$APP"
check_bundle_paths "dist/$APP" "$("$PY" -c "import sys; sys.path[:0] = ['packaging']; import bundle_contents as b
print(b.MAX_BUNDLE_PATH)")"

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
}

if [ "${BASH_SOURCE[0]}" = "$0" ]; then
  main "$@"
fi
