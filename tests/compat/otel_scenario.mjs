// Shared pieces of the OpenTelemetry compat clients.
//
// recordScenario(tracer): records one trace with fixed, whole-microsecond
//   times (so ns -> µs conversion is exact): a SERVER root with an OK status
//   and an event, a CLIENT child with peer.service, an ERROR status and two
//   events (one with attributes), an INTERNAL child, a PRODUCER grandchild
//   and a CONSUMER below that. Returns the trace id.
// startRecordingProxy(target): a loopback HTTP server that forwards every
//   POST to target + path with its content headers, answers with the
//   target's status and body, and remembers each exchange, so a test can
//   compare what an exporter really sent with what the collector returns.
import http from 'node:http';
import { context, trace, SpanKind, SpanStatusCode } from '@opentelemetry/api';

export const SERVICE_NAME = 'Checkout-Svc';
export const SCOPE_NAME = 'outrider-compat';
export const SCOPE_VERSION = '1.2.3';

function hr(baseSec, offsetUs) {
    // [seconds, nanoseconds] with whole microseconds
    return [baseSec + Math.floor(offsetUs / 1e6), (offsetUs % 1e6) * 1000];
}

export function recordScenario(tracer) {
    const base = Math.floor(Date.now() / 1000) - 1;
    const at = (us) => hr(base, 123457 + us);
    const ctxOf = (span) => trace.setSpan(context.active(), span);

    const root = tracer.startSpan('GET /Checkout', {
        kind: SpanKind.SERVER,
        startTime: at(0),
        attributes: { 'http.method': 'GET', 'http.route': '/checkout', 'http.status_code': 200 },
    });
    root.addEvent('request.received', at(1000));
    root.setStatus({ code: SpanStatusCode.OK });

    const charge = tracer.startSpan('Charge Card', {
        kind: SpanKind.CLIENT,
        startTime: at(5000),
        attributes: { 'peer.service': 'Payments', 'http.status_code': 502, retry: true, amount: 1.5 },
    }, ctxOf(root));
    charge.addEvent('retry', { attempt: 1 }, at(10001));
    charge.addEvent('gave up', at(24999));
    charge.setStatus({ code: SpanStatusCode.ERROR, message: 'card declined' });
    charge.end(at(25000));

    const tax = tracer.startSpan('Compute-Tax', {
        kind: SpanKind.INTERNAL,
        startTime: at(26000),
        attributes: { 'tax.region': 'EU' },
    }, ctxOf(root));
    const publish = tracer.startSpan('publish order', {
        kind: SpanKind.PRODUCER,
        startTime: at(27000),
        attributes: { 'messaging.system': 'kafka', 'messaging.destination.name': 'orders' },
    }, ctxOf(tax));
    publish.end(at(29500));
    tax.end(at(30000));

    const consume = tracer.startSpan('consume order', {
        kind: SpanKind.CONSUMER,
        startTime: at(31000),
        attributes: { 'messaging.system': 'kafka' },
    }, ctxOf(publish));
    consume.end(at(35000));

    root.end(at(40000));
    return root.spanContext().traceId;
}

export function startRecordingProxy(target) {
    const exchanges = [];
    const server = http.createServer((req, res) => {
        const chunks = [];
        req.on('data', (c) => chunks.push(c));
        req.on('end', async () => {
            const body = Buffer.concat(chunks);
            const headers = {};
            for (const h of ['content-type', 'content-encoding']) {
                if (req.headers[h]) headers[h] = req.headers[h];
            }
            const ex = { method: req.method, path: req.url, headers, body };
            exchanges.push(ex);
            try {
                const up = await fetch(target + req.url, { method: req.method, headers, body });
                ex.status = up.status;
                ex.response = Buffer.from(await up.arrayBuffer());
                res.writeHead(up.status, { 'content-type': up.headers.get('content-type') || 'text/plain' });
                res.end(ex.response);
            } catch (err) {
                ex.status = 0;
                ex.error = String(err);
                res.writeHead(502);
                res.end();
            }
        });
    });
    return new Promise((resolve) => {
        server.listen(0, '127.0.0.1', () => {
            resolve({
                url: `http://127.0.0.1:${server.address().port}`,
                exchanges,
                close: () => new Promise((r) => server.close(r)),
            });
        });
    });
}
