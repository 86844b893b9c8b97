#!/usr/bin/env bash
# The README's configuration reference is the collector's own settings table: they must not drift.
. "$(dirname "$0")/../lib.sh"
"$OUTRIDER_BIN/outrider-collector" --print-settings >"$T/settings.md"
grep -F -x -f "$T/settings.md" "$OUTRIDER_SRC/README.md" >"$T/found.md" || true
if ! diff -u "$T/settings.md" "$T/found.md"; then
    fail "README.md's settings table differs from 'outrider-collector --print-settings' (lines above are missing from the README)"
fi
echo "1 passed, 0 failed"
