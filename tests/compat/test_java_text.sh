#!/usr/bin/env bash
# common/utf8 against Java, the reference: a Zipkin server lowercases names with
# String.toLowerCase(Locale.ROOT) and reads ill-formed UTF-8 with Java's decoder.
# tests/tools/utf8_text and tests/compat/JavaText.java get the same inputs and
# must give the same bytes:
#   - every code point alone (lowercased and re-encoded), where both Unicode
#     versions define it: Java 17 has Unicode 13, utf8proc 2.8 Unicode 15;
#   - random strings over letters of several scripts (Greek capital sigma in
#     every position and word context, U+0130, marks, digits, the punctuation
#     Java's word rules treat specially, kanji and kana, supplementary letters)
#     mixed with ill-formed sequences (overlong, surrogates, truncated, past
#     U+10FFFF, stray bytes): lowercased and repaired.
# shellcheck source=../lib.sh
. "$(dirname "$0")/../lib.sh"
HERE=$OUTRIDER_SRC/tests/compat

command -v java >/dev/null || fail "java is not installed (scripts/deps.sh installs openjdk-17-jdk-headless)"
TOOL=$OUTRIDER_BIN/utf8_text
[[ -x $TOOL ]] || fail "no utf8_text at $TOOL"
note "$(java -version 2>&1 | head -n1)"

python3 - "$T" <<'PY'
import random, sys
out = sys.argv[1]
with open(out + '/sweep.txt', 'w') as f:
    for cp in range(1, 0x110000):
        if not 0xD800 <= cp <= 0xDFFF:
            f.write(chr(cp).encode().hex() + '\n')
r = random.Random(20240601)
pieces = ['Σ', 'Σ', 'Σ', 'σ', 'ς', 'Α', 'α', 'Ά', 'Ω', 'A', 'b', 'Z', '1', '9', '-', '_', '.', "'", '"', ',', ':', ' ',
          '/', '$', '#', '%', '&', '\u0301', '\u0345', '\u00ad', '\u200b', '\u2027', '\u066b', '\u0663', 'İ', 'ß',
          'ẞ', 'ǅ', 'Ⅻ', 'ⅻ', 'Ⓐ', 'ⓐ', 'ʰ', 'ª', '漢', 'カ', 'ひ', '\u0964', 'É', 'Ж', 'Ѐ', 'Ա', 'Ⴀ', '\U00010400',
          '\U0001E900', '—', '·', '’', '\u3000', '\t', 'Ḁ', 'ﬀ', 'K', 'Å']
bad = [b'\xc0\x80', b'\xed\xa0\x80', b'\xf4\x90\x80\x80', b'\xe2\x82', b'\xf0\x9f\x98', b'\xff', b'\x80',
       b'\xe0\x80\x80', b'\xc3', b'\xed\xbf', b'\xf8\x88\x80\x80\x80', b'\xc1\xbf', b'\xf5', b'\xce']
with open(out + '/random.txt', 'w') as f:
    for _ in range(100000):
        parts = []
        for _ in range(r.randint(0, 12)):
            x = r.random()
            if x < 0.08:
                parts.append(bad[r.randrange(len(bad))])
            elif x < 0.1:
                parts.append(bytes([r.randrange(256)]))
            else:
                parts.append(pieces[r.randrange(len(pieces))].encode())
        f.write(b''.join(parts).hex() + '\n')
PY

for set in sweep random; do
    "$TOOL" <"$T/$set.txt" >"$T/$set.c" || fail "utf8_text failed on $set.txt"
    java "$HERE/JavaText.java" <"$T/$set.txt" >"$T/$set.java" || fail "JavaText.java failed on $set.txt"
    assert_eq "$(wc -l <"$T/$set.txt")" "$(wc -l <"$T/$set.java")" "$set: lines from Java"
    # columns: input, then lowered / repaired / defined from C, then from Java
    paste -d' ' "$T/$set.txt" "$T/$set.c" "$T/$set.java" |
        awk '$3 != $6 || ($4 && $7 && $2 != $5) { print; n++ } END { exit n > 0 }' >"$T/$set.diff" || {
        head -n 20 "$T/$set.diff" | while read -r in c_low c_rep _ j_low j_rep _; do
            echo "  input $in: C lower $c_low repair $c_rep | Java lower $j_low repair $j_rep" >&2
        done
        fail "$set: $(wc -l <"$T/$set.diff") inputs lowercase or repair differently from Java (first ones above)"
    }
    compared=$(paste -d' ' "$T/$set.c" "$T/$set.java" | awk '$3 && $6' | wc -l)
    note "$set: $(wc -l <"$T/$set.txt") inputs, all repaired as Java does, $compared lowercased and compared (defined in both)"
    (( compared > 0 )) || fail "$set: nothing compared"
done
