#!/usr/bin/env bash
# Unicode names and ill-formed UTF-8, end to end. Spans from the service
# "Émail-sender" arrive as Zipkin JSON, Zipkin proto3, OTLP protobuf and OTLP
# JSON; names must be stored and matched lowercased as the Zipkin server's Java
# does (émail-sender, überweisung, σίσυφος with its final sigma, i + U+0307 for
# İ), whatever case the query parameters use, on /api/v2 and /zipkin/api/v2.
# Ill-formed UTF-8 in names, tag keys and values and annotations is repaired to
# U+FFFD (one per ill-formed unit, as Java's decoder) on every path, never
# refused and never stored as sent; every answer is valid UTF-8.
. "$(dirname "$0")/../lib.sh"

start_collector

now_us=$(( $(date +%s%N) / 1000 ))
# Bodies are written by python3 (standard library only: the protobuf messages are
# encoded by hand with their upstream field numbers) so they can carry raw bytes.
python3 - "$T" "$now_us" <<'PY'
import json, struct, sys
out, now_us = sys.argv[1], int(sys.argv[2])

def varint(n):
    b = bytearray()
    while True:
        x = n & 0x7F
        n >>= 7
        b.append(x | (0x80 if n else 0))
        if not n:
            return bytes(b)

def field(num, val):  # bytes/str/message -> LEN, int -> VARINT
    if isinstance(val, int):
        return varint(num << 3) + varint(val)
    if isinstance(val, str):
        val = val.encode()
    return varint(num << 3 | 2) + varint(len(val)) + val

def fixed64(num, val):
    return varint(num << 3 | 1) + struct.pack('<Q', val)

BAD = b'\xff'                # never a UTF-8 byte
SURROGATE = b'\xed\xa0\x80'  # an encoded surrogate: one ill-formed unit, as Java reads it

# --- Zipkin JSON (raw bytes inside the strings) ---
def zjson(trace, sid, name, svc, remote=None, tags=None, ann=None):
    s = b'{"traceId":"%s","id":"%s","kind":"CLIENT","name":"%s","timestamp":%d,"duration":1500,' % (
        trace.encode(), sid.encode(), name, now_us)
    s += b'"localEndpoint":{"serviceName":"%s"}' % svc
    if remote is not None:
        s += b',"remoteEndpoint":{"serviceName":"%s"}' % remote
    if tags:
        s += b',"tags":{' + b','.join(b'"%s":"%s"' % kv for kv in tags) + b'}'
    if ann is not None:
        s += b',"annotations":[{"timestamp":%d,"value":"%s"}]' % (now_us + 1, ann)
    return s + b'}'
with open(out + '/zipkin.json', 'wb') as f:
    f.write(b'[' + zjson('000000000000000000000000000000a1', '00000000000000a1', 'Überweisung'.encode(),
                         'Émail-sender'.encode(), 'ΣΊΣΥΦΟΣ'.encode(), [('Kunde'.encode(), 'Zoë'.encode())])
            + b',' + zjson('000000000000000000000000000000a5', '00000000000000a5', b'Bad' + BAD + b'Span',
                           b'Bad' + BAD + b'Name', None, [(b'k' + BAD, b'caf\xc3'), (b'ok', b'\xc0\xaf!')],
                           SURROGATE + b'x')
            + b']')

# --- Zipkin proto3 ListOfSpans (zipkin.proto) ---
def endpoint(name):
    return field(1, name)
span = (field(1, bytes.fromhex('000000000000000000000000000000a2')) + field(3, bytes.fromhex('00000000000000a2'))
        + field(4, 1) + field(5, 'ÜBERWEISUNG-PROTO') + fixed64(6, now_us) + field(7, 1500)
        + field(8, endpoint('ÉMAIL-SENDER')) + field(9, endpoint('ΣΊΣΥΦΟΣ'))
        + field(10, fixed64(1, now_us + 1) + field(2, b'wire ' + BAD))
        + field(11, field(1, 'İstanbul') + field(2, b'v' + BAD)))
with open(out + '/zipkin.pb', 'wb') as f:
    f.write(field(1, span))

# --- OTLP ExportTraceServiceRequest (trace_service.proto and below) ---
def kv(key, value):
    return field(1, key) + field(2, field(1, value))  # AnyValue.string_value
ospan = (field(1, bytes.fromhex('000000000000000000000000000000a3')) + field(2, bytes.fromhex('00000000000000a3'))
         + field(5, 'Überweisung-OTLP') + field(6, 3)  # SPAN_KIND_CLIENT
         + fixed64(7, now_us * 1000) + fixed64(8, now_us * 1000 + 1500000)
         + field(9, kv('peer.service', 'ΣΊΣΥΦΟΣ')) + field(9, kv('note', b'Stra\xc3\x9fe ' + BAD))
         + field(11, fixed64(1, now_us * 1000 + 1000) + field(2, b'ev' + SURROGATE)))
resource = field(1, kv('service.name', 'Émail-Sender'))
with open(out + '/otlp.pb', 'wb') as f:
    f.write(field(1, field(1, resource) + field(2, field(2, ospan))))

# --- OTLP JSON, raw ill-formed bytes in a string ---
body = json.dumps({'resourceSpans': [{'resource': {'attributes': [
    {'key': 'service.name', 'value': {'stringValue': 'ÉMAIL-sender'}}]},
    'scopeSpans': [{'spans': [{'traceId': '000000000000000000000000000000a4', 'spanId': '00000000000000a4',
                               'name': 'JSON-Span', 'kind': 3, 'startTimeUnixNano': str(now_us * 1000),
                               'endTimeUnixNano': str(now_us * 1000 + 1500000),
                               'attributes': [{'key': 'k', 'value': {'stringValue': 'vBADBYTE'}}]}]}]}]},
    ensure_ascii=False).encode().replace(b'BADBYTE', BAD)
with open(out + '/otlp.json', 'wb') as f:
    f.write(body)
PY

assert_eq 202 "$(http_status POST "$ZIPKIN_URL/api/v2/spans" -H 'Content-Type: application/json' --data-binary @"$T/zipkin.json")" \
    "Zipkin JSON with Unicode names and ill-formed bytes: $(head -c 300 "$LAST_BODY")"
assert_eq 202 "$(http_status POST "$ZIPKIN_URL/api/v2/spans" -H 'Content-Type: application/x-protobuf' --data-binary @"$T/zipkin.pb")" \
    "Zipkin proto3: $(head -c 300 "$LAST_BODY")"
assert_eq 200 "$(http_status POST "$OTLP_URL/v1/traces" -H 'Content-Type: application/x-protobuf' --data-binary @"$T/otlp.pb")" \
    "OTLP protobuf: $(head -c 300 "$LAST_BODY")"
assert_eq 200 "$(http_status POST "$OTLP_URL/v1/traces" -H 'Content-Type: application/json' --data-binary @"$T/otlp.json")" \
    "OTLP JSON with an ill-formed byte: $(head -c 300 "$LAST_BODY")"
assert_eq '{}' "$(jq -c . "$LAST_BODY")" "OTLP JSON: nothing rejected"

# get_utf8 PATH WHAT [curl args]: GET on the Zipkin port; the answer must be 200, valid UTF-8 and JSON.
get_utf8() {
    local path=$1 what=$2
    shift 2
    local body
    body=$(http_get_json "$ZIPKIN_URL$path" "$what" "$@")
    iconv -f UTF-8 -t UTF-8 "$LAST_BODY" >/dev/null 2>&1 || fail "$what: the answer is not valid UTF-8: $(od -c "$LAST_BODY" | head)"
    printf '%s' "$body"
}

# the stored names, on both mounts (Java: "Émail-Sender".toLowerCase(Locale.ROOT) etc.)
for api in /api/v2 /zipkin/api/v2; do
    assert_json_eq '["bad\ufffdname","émail-sender"]' "$(get_utf8 "$api/services" "$api/services")" "$api/services"
    for svc in 'ÉMAIL-SENDER' 'émail-sender' 'Émail-Sender'; do
        assert_json_eq '["json-span","überweisung","überweisung-otlp","überweisung-proto"]' \
            "$(get_utf8 "$api/spans" "span names" -G --data-urlencode "serviceName=$svc")" "$api/spans?serviceName=$svc"
        assert_json_eq '["σίσυφος"]' \
            "$(get_utf8 "$api/remoteServices" "remote services" -G --data-urlencode "serviceName=$svc")" \
            "$api/remoteServices?serviceName=$svc"
    done
    # /traces by service, remote service and span name, each in another case than stored
    got=$(get_utf8 "$api/traces" "traces" -G --data-urlencode 'serviceName=ÉMAIL-SENDER' \
        --data-urlencode 'remoteServiceName=ΣΊΣΥΦΟΣ' --data-urlencode 'spanName=ÜBERWEISUNG' | jq -c '[.[][].id]')
    assert_json_eq '["00000000000000a1"]' "$got" "$api/traces?serviceName=ÉMAIL-SENDER&remoteServiceName=ΣΊΣΥΦΟΣ&spanName=ÜBERWEISUNG"
    got=$(get_utf8 "$api/traces" "traces" -G --data-urlencode 'serviceName=émail-sender' \
        --data-urlencode 'remoteServiceName=σίσυφος' | jq -c '[.[][].id] | sort')
    assert_json_eq '["00000000000000a1","00000000000000a2","00000000000000a3"]' "$got" "$api/traces?serviceName=émail-sender&remoteServiceName=σίσυφος"
    got=$(get_utf8 "$api/traces" "traces" -G --data-urlencode 'serviceName=Émail-sender' | jq -c '[.[][].id] | sort')
    assert_json_eq '["00000000000000a1","00000000000000a2","00000000000000a3","00000000000000a4"]' "$got" \
        "$api/traces?serviceName=Émail-sender"
done

# what each path stored
t=$(get_utf8 /api/v2/trace/000000000000000000000000000000a1 "Zipkin JSON trace")
assert_json_eq '{"name":"überweisung","local":"émail-sender","remote":"σίσυφος","tags":{"Kunde":"Zoë"}}' \
    "$(jq -c '.[0] | {name, local: .localEndpoint.serviceName, remote: .remoteEndpoint.serviceName, tags}' <<<"$t")" \
    "Zipkin JSON span (tags keep their case)"
t=$(get_utf8 /api/v2/trace/000000000000000000000000000000a2 "Zipkin proto3 trace")
assert_json_eq '{"name":"überweisung-proto","local":"émail-sender","remote":"σίσυφος","tags":{"İstanbul":"v\ufffd"},"annotations":["wire \ufffd"]}' \
    "$(jq -c '.[0] | {name, local: .localEndpoint.serviceName, remote: .remoteEndpoint.serviceName, tags, annotations: [.annotations[].value]}' <<<"$t")" \
    "Zipkin proto3 span"
t=$(get_utf8 /api/v2/trace/000000000000000000000000000000a3 "OTLP protobuf trace")
assert_json_eq '{"name":"überweisung-otlp","local":"émail-sender","remote":"σίσυφος","note":"Straße \ufffd","annotations":["ev\ufffd"]}' \
    "$(jq -c '.[0] | {name, local: .localEndpoint.serviceName, remote: .remoteEndpoint.serviceName, note: .tags.note, annotations: [.annotations[].value]}' <<<"$t")" \
    "OTLP protobuf span"
t=$(get_utf8 /api/v2/trace/000000000000000000000000000000a4 "OTLP JSON trace")
assert_eq 'v�' "$(jq -r '.[0].tags.k' <<<"$t")" "OTLP JSON: the ill-formed byte became U+FFFD"
t=$(get_utf8 /api/v2/trace/000000000000000000000000000000a5 "Zipkin JSON trace with ill-formed bytes")
assert_json_eq '{"name":"bad\ufffdspan","local":"bad\ufffdname","tags":{"k\ufffd":"caf\ufffd","ok":"\ufffd\ufffd!"},"annotations":["\ufffdx"]}' \
    "$(jq -c '.[0] | {name, local: .localEndpoint.serviceName, tags, annotations: [.annotations[].value]}' <<<"$t")" \
    "Zipkin JSON span with ill-formed bytes (an overlong pair is two units, a surrogate one)"

# query parameters are repaired as stored strings are: the same ill-formed bytes find the repaired names and tags
assert_json_eq '["bad\ufffdspan"]' "$(get_utf8 '/api/v2/spans?serviceName=BAD%FFNAME' "spans by an ill-formed name")" \
    "/api/v2/spans?serviceName=BAD%FFNAME"
got=$(get_utf8 '/api/v2/traces?annotationQuery=k%3Dv%FF' "traces by an ill-formed tag value" | jq -c '[.[][].id]')
assert_json_eq '["00000000000000a4"]' "$got" "/api/v2/traces?annotationQuery=k=v%FF"
collector_alive
