#!/usr/bin/env bash
# Add Nibble Studio to the desktop's application menu (per user, no root): run it from the unpacked folder.
#   ./install-desktop-entry.sh            install      ./install-desktop-entry.sh --remove    uninstall
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
apps="${XDG_DATA_HOME:-$HOME/.local/share}/applications"
icons="${XDG_DATA_HOME:-$HOME/.local/share}/icons/hicolor/256x256/apps"
if [ "${1:-}" = "--remove" ]; then
  rm -f "$apps/nibble-studio.desktop" "$icons/nibble-studio.png"; echo "removed"; exit 0
fi
mkdir -p "$apps" "$icons"
cp "$here/nibble-studio.png" "$icons/nibble-studio.png"
sed -e "s|^Exec=.*|Exec=\"$here/nibble-studio\"|" -e "s|^Icon=.*|Icon=$icons/nibble-studio.png|" \
  "$here/nibble-studio.desktop" > "$apps/nibble-studio.desktop"
chmod +x "$apps/nibble-studio.desktop"
echo "installed $apps/nibble-studio.desktop -> $here/nibble-studio"
