#!/usr/bin/env bash
# GUI check of a built Linux bundle under Xvfb, in a clean environment with a new temporary HOME:
#   1. first launch: time until the main window is mapped (xwininfo: IsViewable); click the prompt box (default
#      dock layout, no window manager), type a prompt, Ctrl+Enter, wait for the PNG in the appdirs data folder;
#      screenshot; SIGTERM;
#   2. second launch, same HOME: time to window again; the gallery and prompt history must show the first
#      launch's image and prompt (read from the app's SQLite store, plus a screenshot to look at);
#   3. nothing was written inside the bundle folder.
# Usage: bash packaging/check_linux_gui.sh ["dist/Nibble Studio"] [OUTDIR]   (needs Xvfb, xdotool, x11-utils,
# imagemagick's `import`). Exit 0 when both windows appeared within 3 s and the data persisted.
set -uo pipefail
BUNDLE="$(cd "${1:-dist/Nibble Studio}" && pwd)"
OUT="$(mkdir -p "${2:-/tmp/nibble-gui-check}" && cd "${2:-/tmp/nibble-gui-check}" && pwd)"
PROMPT="a large yellow square on a purple background"
home="$(mktemp -d)"
export DISPLAY=:87
Xvfb "$DISPLAY" -screen 0 1440x900x24 -nolisten tcp >/dev/null 2>&1 &
xvfb=$!
trap 'kill $xvfb 2>/dev/null; rm -rf "$home"' EXIT
for _ in $(seq 50); do xdpyinfo >/dev/null 2>&1 && break; sleep 0.1; done
fail=0
marker="$home/.start-marker"; touch "$marker"; sleep 1

launch() {  # $1 = label; sets app (pid) and wid; prints the time to a viewable window
  local t0 now
  t0=$(date +%s%N)
  (cd "$home" && exec env -i HOME="$home" DISPLAY="$DISPLAY" PATH=/usr/bin:/bin LANG=C.UTF-8 \
      XDG_DATA_HOME="$home/.local/share" XDG_CACHE_HOME="$home/.cache" XDG_CONFIG_HOME="$home/.config" \
      "$BUNDLE/nibble-studio" >"$OUT/$1.log" 2>&1) &
  app=$!
  wid=""
  for _ in $(seq 300); do
    for w in $(xdotool search --name '^Nibble Studio$' 2>/dev/null); do
      if xwininfo -id "$w" 2>/dev/null | grep -q IsViewable; then wid=$w; break; fi
    done
    [ -n "$wid" ] && break
    sleep 0.02
  done
  now=$(date +%s%N)
  ms=$(( (now - t0) / 1000000 ))
  if [ -z "$wid" ]; then echo "$1: NO WINDOW after ${ms} ms"; fail=1; return; fi
  echo "$1: window $wid viewable ${ms} ms after launch"
  [ "$ms" -le 3000 ] || { echo "$1: FAIL slower than 3 s"; fail=1; }
}

images="$home/.local/share/NibbleStudio/images"
launch first
if [ -n "$wid" ]; then
  sleep 1
  xdotool windowfocus --sync "$wid" 2>/dev/null
  xdotool mousemove --window "$wid" 150 95 click 1  # the prompt box, top of the left dock (default layout)
  sleep 0.3
  xdotool type --delay 5 "$PROMPT"
  xdotool key ctrl+Return
  for i in $(seq 180); do
    [ -n "$(find "$images" -name '*.png' 2>/dev/null | head -1)" ] && break
    sleep 0.5
  done
  if [ -n "$(find "$images" -name '*.png' 2>/dev/null | head -1)" ]; then
    echo "first: image written after ~$((i / 2)) s: $(cd "$images" && find . -name '*.png' | head -1)"
  else
    echo "first: FAIL no image in $images"; fail=1
  fi
  sleep 2
  import -window root "$OUT/first-launch.png"
fi
kill -TERM "$app" 2>/dev/null; wait "$app" 2>/dev/null

launch second
sleep 4
import -window root "$OUT/second-launch.png"
kill -TERM "$app" 2>/dev/null; wait "$app" 2>/dev/null
python3 - "$home/.local/share/NibbleStudio/nibble.sqlite3" "$PROMPT" <<'PY' || fail=1
import sqlite3, sys
db = sqlite3.connect(sys.argv[1])
images = db.execute("SELECT count(*) FROM images").fetchone()[0]
prompts = [r[0] for r in db.execute("SELECT prompt FROM prompts")]
print(f"store after two launches: {images} image row(s); prompt history {prompts}")
found = sys.argv[2] in prompts
sys.exit(0 if images >= 1 and found else 1)
PY
echo "data folder: $(find "$home" -maxdepth 4 -type d | sed "s|$home|~|" | sort | tr '\n' ' ')"
written="$(find "$BUNDLE" -newer "$marker" | head -5)"
if [ -n "$written" ]; then echo "FAIL written inside the bundle: $written"; fail=1
else echo "nothing written inside the bundle folder"; fi
echo "screenshots and logs in $OUT"
[ "$fail" = 0 ] && echo "GUI check PASSED" || echo "GUI check FAILED"
exit "$fail"
