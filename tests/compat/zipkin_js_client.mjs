// zipkin-js client for test_zipkin_js.sh.
//
// Usage: node zipkin_js_client.mjs ZIPKIN_URL OUT_JSON
// Two tracers, "Frontend" and "Backend", each with the real HttpClient /
// HttpServer instrumentation, record one call: a CLIENT span, the SERVER span
// that joins it (shared, same span id, as B3 propagation does) and a local
// span inside the server, with tags and annotations. The HttpLogger
// (JSON_V2) posts them to ZIPKIN_URL/api/v2/spans. Every body it posts and
// every status it gets back are written to OUT_JSON:
//   {"traceId": "...", "posts": [{"status": 202, "body": [span, ...]}, ...]}
// so the shell script can compare what the collector returns with exactly
// what the client sent.
import { writeFileSync } from 'node:fs';
import zipkin from 'zipkin';
import transport from 'zipkin-transport-http';

const { HttpLogger } = transport;
const [zipkinUrl, outPath] = process.argv.slice(2);
if (!zipkinUrl || !outPath) {
    console.error('usage: node zipkin_js_client.mjs ZIPKIN_URL OUT_JSON');
    process.exit(2);
}

const {
    Tracer, BatchRecorder, ExplicitContext, jsonEncoder, Instrumentation, sampler, option,
} = zipkin;

const posts = [];
const pending = [];
function capturingFetch(url, options) {
    const p = fetch(url, { method: options.method, body: options.body, headers: options.headers })
        .then(async (res) => {
            posts.push({ status: res.status, body: JSON.parse(options.body), response: await res.text() });
            return res;
        });
    pending.push(p);
    return p;
}

const logger = new HttpLogger({
    endpoint: `${zipkinUrl}/api/v2/spans`,
    jsonEncoder: jsonEncoder.JSON_V2,
    httpInterval: 60 * 60 * 1000, // we flush by hand
    fetchImplementation: capturingFetch,
});
logger.on('error', (err) => {
    console.error(`HttpLogger error: ${err.message}`);
    process.exitCode = 1;
});

function makeTracer(serviceName) {
    return new Tracer({
        ctxImpl: new ExplicitContext(),
        recorder: new BatchRecorder({ logger }),
        localServiceName: serviceName,
        sampler: new sampler.Sampler(sampler.alwaysSample),
        traceId128Bit: true,
        supportsJoin: true,
    });
}

function busyWaitMicros(us) {
    const end = process.hrtime.bigint() + BigInt(us) * 1000n;
    while (process.hrtime.bigint() < end) { /* spin: spans need a measurable duration */ }
}

const frontend = makeTracer('Frontend');
const backend = makeTracer('Backend');
const client = new Instrumentation.HttpClient({ tracer: frontend, remoteServiceName: 'Backend' });
const server = new Instrumentation.HttpServer({ tracer: backend, host: '127.0.0.1', port: 8080 });

let traceId;
frontend.scoped(() => {
    const req = client.recordRequest({ headers: {} }, 'http://backend:8080/api/checkout?cart=7', 'post');
    const clientId = frontend.id;
    traceId = clientId.traceId;
    frontend.recordBinary('cart.size', '3');
    busyWaitMicros(500);

    // the "network": the backend reads the B3 headers the client wrote
    const readHeader = (name) => {
        const v = req.headers[name];
        return v === undefined ? option.None : new option.Some(v);
    };
    backend.scoped(() => {
        const serverId = server.recordRequest('POST', 'http://backend:8080/api/checkout?cart=7', readHeader);
        backend.recordMessage('cache miss');
        backend.recordBinary('user.tier', 'Gold');
        backend.local('Compute-Price', () => {
            backend.recordBinary('price.currency', 'EUR');
            busyWaitMicros(1500);
            backend.recordMessage('rounded');
            busyWaitMicros(500);
        });
        busyWaitMicros(500);
        server.recordResponse(serverId, 200);
    });
    busyWaitMicros(300);
    client.recordResponse(clientId, 200);
});

logger.processQueue(capturingFetch);
await Promise.allSettled(pending);

const sent = posts.flatMap((p) => p.body);
writeFileSync(outPath, JSON.stringify({ traceId, posts }, null, 1));
console.error(`zipkin-js: trace ${traceId}, ${sent.length} spans in ${posts.length} POSTs, statuses ${posts.map((p) => p.status).join(',')}`);
if (posts.length === 0) {
    console.error('zipkin-js: nothing was posted');
    process.exit(1);
}
