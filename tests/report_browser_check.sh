#!/usr/bin/env bash
# Opens a softnet HTML report in headless Chromium and checks it the way a reader would see it:
#   (a) every <img> decoded (the report's inline script writes data-images-loaded="N/M" on
#       <body> at window load; we need N = M > 0 in the dumped DOM), and each EXPECTED string
#       (e.g. the accuracy) is present in the DOM;
#   (b) a screenshot is saved as OUT_DIR/report.png.
#
# Usage: tests/report_browser_check.sh REPORT.html OUT_DIR [EXPECTED...]
# Env:   CHROMIUM (default: chromium, then chromium-browser, google-chrome)
# Exit:  0 if everything checks out, 1 on a failed check, 2 on bad usage or no browser.
set -euo pipefail

if [ $# -lt 2 ]; then
  echo "usage: $0 REPORT.html OUT_DIR [EXPECTED...]" >&2
  exit 2
fi
report=$1
out=$2
shift 2
[ -f "$report" ] || { echo "no such report: $report" >&2; exit 2; }
mkdir -p "$out"

browser=${CHROMIUM:-}
if [ -z "$browser" ]; then
  for b in chromium chromium-browser google-chrome; do
    if command -v "$b" >/dev/null 2>&1; then browser=$b; break; fi
  done
fi
[ -n "$browser" ] || { echo "no chromium found (apt-get install -y chromium)" >&2; exit 2; }

url="file://$(cd "$(dirname "$report")" && pwd)/$(basename "$report")"
profile=$(mktemp -d)
trap 'rm -rf "$profile"' EXIT
flags=(--headless --no-sandbox --disable-gpu --no-first-run --disable-background-networking
  --disable-component-update --disable-sync --disable-dev-shm-usage
  --user-data-dir="$profile" --virtual-time-budget=10000)

dom="$out/report.dom.html"
"$browser" "${flags[@]}" --dump-dom "$url" >"$dom" 2>"$out/chromium-dom.log" || {
  echo "FAIL: chromium --dump-dom failed, see $out/chromium-dom.log" >&2; exit 1; }

fail=0
loaded=$(grep -o 'data-images-loaded="[^"]*"' "$dom" | head -1 | sed 's/.*="\(.*\)"/\1/' || true)
case "$loaded" in
  */*)
    ok=${loaded%/*}; total=${loaded#*/}
    if [ "$total" -gt 0 ] && [ "$ok" = "$total" ]; then
      echo "ok: $ok/$total images loaded"
    else
      echo "FAIL: images loaded $loaded" >&2; fail=1
    fi ;;
  *) echo "FAIL: no image count in the DOM (data-images-loaded=\"$loaded\"); did the load script run?" >&2; fail=1 ;;
esac
for want in "$@"; do
  if grep -qF -- "$want" "$dom"; then
    echo "ok: found \"$want\""
  else
    echo "FAIL: \"$want\" not in the page" >&2; fail=1
  fi
done

shot="$out/report.png"
rm -f "$shot"
"$browser" "${flags[@]}" --hide-scrollbars --window-size=1200,3000 --screenshot="$shot" "$url" \
  >"$out/chromium-shot.log" 2>&1 || true
if [ -s "$shot" ]; then
  echo "ok: screenshot $shot"
else
  echo "FAIL: no screenshot, see $out/chromium-shot.log" >&2; fail=1
fi
exit $fail
