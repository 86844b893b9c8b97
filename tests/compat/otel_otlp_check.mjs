// Checks what the collector's Zipkin API returned for an OTLP trace against
// the expectations otel_otlp_client.mjs wrote.
//
// Usage: node otel_otlp_check.mjs EXPECTED_JSON ACTUAL_JSON
//   EXPECTED_JSON: the client's output file ({"expected": [...]}).
//   ACTUAL_JSON: a Zipkin v2 span list (GET /api/v2/trace/{id}).
// Exact: traceId, id, parentId, name, kind, timestamp, duration (µs),
// localEndpoint, remoteEndpoint, no shared/debug flags; every attribute and
// status tag with its value; one annotation per event at its time, valued with
// the event name (events with attributes may carry them in the value).
// Tags beyond those must be among the allowed optional ones (scope, resource,
// peer.service) with their values. Prints every difference; exits 1 on any.
import { readFileSync } from 'node:fs';

const [expPath, actPath] = process.argv.slice(2);
const expected = JSON.parse(readFileSync(expPath, 'utf8')).expected;
const actual = JSON.parse(readFileSync(actPath, 'utf8'));
const problems = [];
const show = (v) => JSON.stringify(v);

if (!Array.isArray(actual)) {
    problems.push(`response is not a span list: ${show(actual)}`);
} else {
    if (actual.length !== expected.length) {
        problems.push(`expected ${expected.length} spans, got ${actual.length}`);
    }
    for (const exp of expected) {
        const e = exp.span;
        const matches = actual.filter((a) => a.id === e.id);
        if (matches.length !== 1) {
            problems.push(`span ${e.id} (${e.name}): found ${matches.length} times`);
            continue;
        }
        const a = matches[0];
        const where = `span ${e.id} (${e.name})`;
        for (const k of ['traceId', 'id', 'parentId', 'name', 'kind', 'timestamp', 'duration', 'localEndpoint', 'remoteEndpoint']) {
            if (show(a[k]) !== show(e[k])) problems.push(`${where}: ${k}: expected ${show(e[k])}, got ${show(a[k])}`);
        }
        for (const k of ['shared', 'debug']) {
            if (a[k]) problems.push(`${where}: ${k}: expected absent, got ${show(a[k])}`);
        }
        const known = new Set(['traceId', 'id', 'parentId', 'name', 'kind', 'timestamp', 'duration',
            'localEndpoint', 'remoteEndpoint', 'tags', 'annotations', 'shared', 'debug']);
        for (const k of Object.keys(a)) {
            if (!known.has(k)) problems.push(`${where}: unexpected field ${k}: ${show(a[k])}`);
        }
        const tags = a.tags || {};
        for (const [k, v] of Object.entries(exp.tags)) {
            if (tags[k] !== v) problems.push(`${where}: tag ${k}: expected ${show(v)}, got ${show(tags[k])}`);
        }
        for (const [k, v] of Object.entries(tags)) {
            if (k in exp.tags) continue;
            if (!(k in exp.optionalTags)) problems.push(`${where}: unexpected tag ${k}=${show(v)}`);
            else if (exp.optionalTags[k] !== v) problems.push(`${where}: tag ${k}: expected ${show(exp.optionalTags[k])} if present, got ${show(v)}`);
        }
        const anns = [...(a.annotations || [])].sort((x, y) => x.timestamp - y.timestamp);
        const wantAnns = [...exp.annotations].sort((x, y) => x.timestamp - y.timestamp);
        if (anns.length !== wantAnns.length) {
            problems.push(`${where}: expected annotations ${show(wantAnns)}, got ${show(a.annotations)}`);
        } else {
            wantAnns.forEach((w, i) => {
                const g = anns[i];
                if (g.timestamp !== w.timestamp) problems.push(`${where}: annotation ${w.name}: timestamp expected ${w.timestamp}, got ${g.timestamp}`);
                const ok = w.attributes === null ? g.value === w.name : typeof g.value === 'string' && g.value.includes(w.name);
                if (!ok) problems.push(`${where}: annotation value: expected ${show(w.name)}${w.attributes ? ' (with attributes)' : ''}, got ${show(g.value)}`);
            });
        }
    }
}
if (problems.length) {
    console.error(problems.map((p) => `  - ${p}`).join('\n'));
    process.exit(1);
}
console.error(`otlp check: ${expected.length} spans match`);
