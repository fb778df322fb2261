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

# desktop_string TEXT: TEXT as a string value of a desktop entry (the specification's escapes \\ \t \r \n).
desktop_string() {
  local s=${1//\\/\\\\}
  s=${s//$'\t'/\\t}; s=${s//$'\r'/\\r}; s=${s//$'\n'/\\n}
  printf '%s' "$s"
}

# exec_argument PATH: PATH as one quoted argument of Exec=. Inside the quotes " ` $ \ take a backslash, % is
# written %% (a field code otherwise), and the whole value is then a string (its backslashes doubled again):
# a folder named "A&B|C $HOME 100%" must start that program, not break the entry or run something else.
exec_argument() {
  local s=${1//\\/\\\\}
  s=${s//\"/\\\"}; s=${s//\`/\\\`}; s=${s//\$/\\\$}; s=${s//%/%%}
  desktop_string "\"$s\""
}

if [[ "$here" == *$'\n'* ]]; then
  echo "error: the path of this folder contains a line break, which a menu entry cannot start; move or rename the" \
    "folder ($here) and run this script again" >&2
  exit 1
fi
mkdir -p "$apps" "$icons"
cp "$here/nibble-studio.png" "$icons/nibble-studio.png"
# Written line by line rather than through sed: any character of the path reaches the file as it is (escaped for
# the entry), none is read as part of a sed command (& | \ did).
while IFS= read -r line || [ -n "$line" ]; do
  case "$line" in
    # the program named by its path; the template's arguments after it (%F: the files opened with the app) kept
    Exec=*) printf 'Exec=%s%s\n' "$(exec_argument "$here/nibble-studio")" "${line#Exec=nibble-studio}" ;;
    Icon=*) printf 'Icon=%s\n' "$(desktop_string "$icons/nibble-studio.png")" ;;
    *) printf '%s\n' "$line" ;;
  esac
done < "$here/nibble-studio.desktop" > "$apps/nibble-studio.desktop"
chmod +x "$apps/nibble-studio.desktop"
echo "installed $apps/nibble-studio.desktop -> $here/nibble-studio"
