// Outrider /mesh: draws the service graph /api/mesh serves as SVG, and polls
// it every POLL_MS.
//
// Layout: layered, left to right by call depth, written here (no library).
// Cycles are broken by a depth-first search from the services nobody calls
// (an edge back to a service still on the search's stack is drawn, below the
// columns, but does not place anything); each service then goes one column
// right of its furthest caller (longest path); a few barycentre sweeps order
// each column by the mean position of its neighbours, which removes most
// crossings in graphs of this size. Positions only depend on the graph, so a
// refresh with the same services redraws them in the same places.
'use strict';

(() => {
  const POLL_MS = 5000;
  const SVG_NS = 'http://www.w3.org/2000/svg';
  const NODE_W = 230;
  const NODE_H = 58; // without versions
  const VERSIONS_H = 34; // the canary bar and its legend
  const COL_GAP = 200;
  const ROW_GAP = 36;
  const PAD = 30;
  const BACK_DIP = 56; // how far below the columns an edge back to the left runs
  const SWEEPS = 8;
  const VERSION_COLOURS = 6;
  const WINDOWS = ['1m', '5m', '15m', '1h'];

  const select = document.getElementById('window');
  const svg = document.getElementById('graph');
  const statusLine = document.getElementById('status');
  const empty = document.getElementById('empty');
  const apiLink = document.getElementById('api-link');
  const tbody = document.querySelector('#edges tbody');
  let generation = 0;
  let timer = 0;
  let renders = 0;

  const fmt = {
    rps: (v) => (v >= 100 ? v.toFixed(0) : v >= 10 ? v.toFixed(1) : v.toFixed(2)),
    pct: (v) => (v === null ? '–' : (v * 100).toFixed(1) + '%'),
    ms: (v) => (v === null ? '–' : (v >= 100 ? v.toFixed(0) : v.toFixed(1)) + ' ms'),
    share: (v) => (v === null ? '–' : Math.round(v * 100) + '%'),
    duration(s) {
      if (s < 90) return Math.round(s) + ' s';
      if (s < 5400) return Math.round(s / 60) + ' min';
      return (s / 3600).toFixed(1) + ' h';
    },
  };

  const label = (node) => (node.namespace ? node.name + '.' + node.namespace : node.name);
  const clip = (s, n) => (s.length > n ? s.slice(0, n - 1) + '…' : s);

  function health(edge) {
    if (edge.reporter === 'trace') return 'trace';
    if (edge.successRate === null || edge.successRate >= 0.99) return 'ok';
    return edge.successRate >= 0.95 ? 'warn' : 'bad';
  }

  function el(name, attrs, parent, text) {
    const e = document.createElementNS(SVG_NS, name);
    for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, String(v));
    if (text !== undefined) e.textContent = text;
    if (parent) parent.appendChild(e);
    return e;
  }

  function html(name, parent, text, cls) {
    const e = document.createElement(name);
    if (text !== undefined) e.textContent = text;
    if (cls) e.className = cls;
    parent.appendChild(e);
    return e;
  }

  function link(parent, href, text, title) {
    const a = html('a', parent, text);
    a.href = href;
    a.title = title;
    a.target = '_blank';
    a.rel = 'noopener';
    parent.appendChild(document.createTextNode(' '));
    return a;
  }

  // ---- layout ----

  // Break cycles: the edges a depth-first search finds back to its stack are left out of the DAG.
  function acyclic(n, out, indegree) {
    const state = new Array(n).fill(0); // 0 unseen, 1 on the stack, 2 done
    const dag = Array.from({ length: n }, () => []);
    const visit = (v) => {
      state[v] = 1;
      for (const w of out[v]) {
        if (state[w] === 1) continue;
        dag[v].push(w);
        if (state[w] === 0) visit(w);
      }
      state[v] = 2;
    };
    const roots = [...Array(n).keys()].filter((v) => indegree[v] === 0);
    for (const v of roots.concat([...Array(n).keys()])) if (state[v] === 0) visit(v);
    return dag;
  }

  // Longest path from the sources: a service sits one column right of its furthest caller.
  function columnsOf(n, dag) {
    const column = new Array(n).fill(0);
    const waiting = new Array(n).fill(0);
    for (const ws of dag) for (const w of ws) waiting[w]++;
    const queue = [...Array(n).keys()].filter((v) => waiting[v] === 0);
    for (let i = 0; i < queue.length; i++) {
      const v = queue[i];
      for (const w of dag[v]) {
        column[w] = Math.max(column[w], column[v] + 1);
        if (--waiting[w] === 0) queue.push(w);
      }
    }
    const cols = [];
    for (const v of queue) (cols[column[v]] = cols[column[v]] || []).push(v);
    return { column, cols: cols.filter(Boolean) };
  }

  // Order each column by the mean position of its neighbours, sweeping right then left.
  function orderColumns(n, dag, cols) {
    const callers = Array.from({ length: n }, () => []);
    dag.forEach((ws, v) => ws.forEach((w) => callers[w].push(v)));
    const pos = new Array(n);
    const place = (col) => col.forEach((v, i) => (pos[v] = i / Math.max(1, col.length - 1)));
    cols.forEach(place);
    for (let s = 0; s < SWEEPS; s++) {
      const right = s % 2 === 0;
      const seq = right ? cols.slice(1) : cols.slice(0, -1).reverse();
      for (const col of seq) {
        const key = new Map();
        for (const v of col) {
          const nb = right ? callers[v] : dag[v];
          key.set(v, nb.length ? nb.reduce((a, w) => a + pos[w], 0) / nb.length : pos[v]);
        }
        col.sort((a, b) => key.get(a) - key.get(b) || pos[a] - pos[b]);
        place(col);
      }
    }
  }

  function layout(nodes, edges) {
    const n = nodes.length;
    const at = new Map(nodes.map((node, i) => [node.service, i]));
    const out = Array.from({ length: n }, () => []);
    const indegree = new Array(n).fill(0);
    for (const e of edges) {
      const s = at.get(e.source);
      const d = at.get(e.destination);
      if (s === undefined || d === undefined || s === d) continue;
      out[s].push(d);
      indegree[d]++;
    }
    const dag = acyclic(n, out, indegree);
    const { column, cols } = columnsOf(n, dag);
    const backwards = out.some((ws, v) => ws.some((w) => column[w] <= column[v]));
    orderColumns(n, dag, cols);
    const height = (v) => NODE_H + (nodes[v].versions.length ? VERSIONS_H : 0);
    const colHeight = (col) => col.reduce((a, v) => a + height(v), 0) + ROW_GAP * (col.length - 1);
    const tallest = Math.max(0, ...cols.map(colHeight));
    const box = new Array(n);
    cols.forEach((col, c) => {
      let y = PAD + (tallest - colHeight(col)) / 2;
      for (const v of col) {
        box[v] = { x: PAD + c * (NODE_W + COL_GAP), y, w: NODE_W, h: height(v), column: column[v] };
        y += height(v) + ROW_GAP;
      }
    });
    return {
      at,
      box,
      width: 2 * PAD + cols.length * NODE_W + Math.max(0, cols.length - 1) * COL_GAP + 80,
      height: 2 * PAD + tallest + (backwards ? BACK_DIP : 0),
      bottom: PAD + tallest,
    };
  }

  // ---- drawing ----

  function edgePath(s, d, bottom) {
    if (s === d) {
      const x = s.x + s.w;
      const y1 = s.y + s.h / 3;
      const y2 = s.y + (2 * s.h) / 3;
      return { d: `M${x},${y1} C${x + 70},${y1 - 30} ${x + 70},${y2 + 30} ${x + 4},${y2}`, lx: x + 56, ly: s.y + 4 };
    }
    if (d.column > s.column) {
      const x1 = s.x + s.w;
      const y1 = s.y + s.h / 2;
      const x2 = d.x - 2;
      const y2 = d.y + d.h / 2;
      const c = (x2 - x1) / 2;
      return { d: `M${x1},${y1} C${x1 + c},${y1} ${x2 - c},${y2} ${x2},${y2}`, lx: (x1 + x2) / 2, ly: (y1 + y2) / 2 - 6 };
    }
    // back to an earlier (or the same) column: under the columns
    const x1 = s.x + s.w / 2;
    const y1 = s.y + s.h;
    const x2 = d.x + d.w / 2 + 12;
    const y2 = d.y + d.h + 2;
    const dip = bottom + BACK_DIP - 10;
    return { d: `M${x1},${y1} C${x1},${dip} ${x2},${dip} ${x2},${y2}`, lx: (x1 + x2) / 2, ly: (y1 + y2 + 6 * dip) / 8 - 4 };
  }

  function drawMarkers(defs) {
    for (const h of ['ok', 'warn', 'bad', 'trace']) {
      const m = el('marker', { id: 'arrow-' + h, viewBox: '0 0 10 10', refX: 9, refY: 5, markerWidth: 9, markerHeight: 9,
        markerUnits: 'userSpaceOnUse', orient: 'auto-start-reverse' }, defs);
      el('path', { d: 'M0,0 L10,5 L0,10 z' }, m);
    }
  }

  // Two lines above the curve's middle: the rate, then success and p99.
  function drawEdgeLabel(parent, e, x, y) {
    const text = el('text', { class: 'label', x, y: y - 15, 'text-anchor': 'middle' }, parent);
    el('tspan', { x, dy: 0 }, text, fmt.rps(e.rps) + ' rps ');
    let second = fmt.pct(e.successRate);
    if (e.p99Ms !== null) second += ' · p99 ' + fmt.ms(e.p99Ms);
    el('tspan', { x, dy: 14 }, text, second);
  }

  function drawEdge(layer, e, lay, nodes) {
    const s = lay.at.get(e.source);
    const d = lay.at.get(e.destination);
    if (s === undefined || d === undefined) return;
    const h = health(e);
    const g = el('g', {
      class: 'edge ' + h,
      'data-source': e.source,
      'data-destination': e.destination,
      'data-reporter': e.reporter,
      'data-rps': e.rps,
      'data-success-rate': e.successRate === null ? '' : e.successRate,
      'data-p99-ms': e.p99Ms === null ? '' : e.p99Ms,
      'data-requests': e.requests,
      'data-errors': e.errors,
    }, layer);
    const a = el('a', { href: e.zipkin || e.traces, target: '_blank', rel: 'noopener' }, g);
    const p = edgePath(lay.box[s], lay.box[d], lay.bottom);
    el('title', {}, a, `${label(nodes[s])} → ${label(nodes[d])}\n${e.requests} requests, ${e.errors} failed` +
      ` (seen by ${e.reporter})\nclick: its traces` + (e.zipkin ? ' in the Zipkin UI' : ' (JSON)'));
    el('path', { class: 'line', d: p.d, 'marker-end': `url(#arrow-${h})` }, a);
    drawEdgeLabel(a, e, p.lx, p.ly);
  }

  function nodeSubtitle(node) {
    const parts = [];
    if (node.namespace) parts.push(node.namespace);
    if (node.requests > 0) parts.push(fmt.rps(node.rps) + ' rps in · ' + fmt.pct(node.successRate));
    else if (node.kind === 'unknown') parts.push('outside the mesh');
    else parts.push(fmt.rps(node.outRps) + ' rps out');
    return parts.join(' · ');
  }

  function drawVersions(g, node, b) {
    const barW = b.w - 24;
    let x = 12;
    el('rect', { class: 'bar-bg', x: 12, y: NODE_H - 4, width: barW, height: 8, rx: 3 }, g);
    node.versions.forEach((v, i) => {
      const w = barW * (v.share || 0);
      el('rect', { class: 'v' + (i % VERSION_COLOURS), x, y: NODE_H - 4, width: Math.max(0, w), height: 8 }, g);
      x += w;
    });
    const text = node.versions.map((v) => `${v.version} ${fmt.share(v.share)}`).join(' · ');
    el('text', { class: 'versions', x: 12, y: NODE_H + 20 }, g, clip(text, 34));
  }

  function drawNode(layer, node, b) {
    const g = el('g', {
      class: 'node kind-' + node.kind,
      transform: `translate(${b.x},${b.y})`,
      'data-service': node.service,
      'data-name': node.name,
      'data-namespace': node.namespace,
      'data-kind': node.kind,
      'data-rps': node.rps,
      'data-requests': node.requests,
      'data-versions': node.versions.map((v) => v.version + '=' + v.share).join(';'),
    }, layer);
    const tip = [node.service, `${node.requests} requests in, ${node.errors} failed, ${node.outRequests} out`]
      .concat(node.versions.map((v) => `${v.version}: ${fmt.share(v.share)} (${fmt.rps(v.rps)} rps)`));
    el('title', {}, g, tip.join('\n'));
    el('rect', { class: 'box', width: b.w, height: b.h, rx: 8 }, g);
    el('text', { class: 'name', x: 12, y: 22 }, g, clip(node.name, 28));
    el('text', { class: 'sub', x: 12, y: 41 }, g, clip(nodeSubtitle(node), 38));
    if (node.versions.length) drawVersions(g, node, b);
  }

  function drawGraph(graph) {
    svg.replaceChildren();
    empty.hidden = graph.nodes.length > 0;
    const lay = layout(graph.nodes, graph.edges);
    svg.setAttribute('width', lay.width);
    svg.setAttribute('height', graph.nodes.length ? lay.height : 0);
    svg.setAttribute('viewBox', `0 0 ${lay.width} ${graph.nodes.length ? lay.height : 0}`);
    drawMarkers(el('defs', {}, svg));
    const edges = el('g', { class: 'edges' }, svg);
    const nodes = el('g', { class: 'nodes' }, svg);
    for (const e of graph.edges) drawEdge(edges, e, lay, graph.nodes);
    graph.nodes.forEach((node, i) => drawNode(nodes, node, lay.box[i]));
  }

  function drawTable(graph) {
    const byService = new Map(graph.nodes.map((n) => [n.service, n]));
    const name = (s) => (byService.has(s) ? label(byService.get(s)) : s);
    tbody.replaceChildren();
    for (const e of graph.edges) {
      const tr = html('tr', tbody);
      tr.dataset.source = e.source;
      tr.dataset.destination = e.destination;
      html('td', tr, name(e.source));
      html('td', tr, name(e.destination));
      html('td', tr, fmt.rps(e.rps), 'num rps');
      const h = health(e);
      html('td', tr, fmt.pct(e.successRate), 'num success' + (h === 'bad' || h === 'warn' ? ' ' + h : ''));
      html('td', tr, fmt.ms(e.p99Ms), 'num p99');
      html('td', tr, String(e.requests), 'num requests');
      html('td', tr, String(e.errors), 'num errors');
      html('td', tr, e.reporter === 'trace' ? 'traces' : e.reporter + ' sidecar', 'reporter');
      const links = html('td', tr, undefined, 'links');
      if (e.zipkin) link(links, e.zipkin, 'Zipkin', 'its traces in the Zipkin UI');
      link(links, e.traces, 'JSON', 'its traces from the collector\'s Zipkin API');
    }
  }

  function render(graph) {
    drawGraph(graph);
    drawTable(graph);
    svg.dataset.window = graph.window;
    svg.dataset.coveredSeconds = graph.coveredSeconds;
    svg.dataset.generatedAtMs = graph.generatedAtMs;
    let text = `Updated ${new Date(graph.generatedAtMs).toLocaleTimeString()} · ${graph.nodes.length} services, ` +
      `${graph.edges.length} calls · covering ${fmt.duration(graph.coveredSeconds)}`;
    if (graph.truncated) {
      text += ` · only the busiest shown (limits: ${graph.limits.maxNodes} services, ${graph.limits.maxEdges} calls)`;
    }
    statusLine.textContent = text;
    statusLine.className = '';
    document.body.dataset.renders = String(++renders);
  }

  function fail(message) {
    statusLine.textContent = message;
    statusLine.className = 'error';
  }

  async function refresh() {
    const mine = ++generation;
    clearTimeout(timer);
    const url = '/api/mesh?window=' + encodeURIComponent(select.value);
    try {
      const r = await fetch(url, { cache: 'no-store' });
      const body = r.ok ? await r.json() : await r.text();
      if (mine !== generation) return;
      if (r.ok) render(body);
      else fail(`${url}: HTTP ${r.status}: ${body}`);
    } catch (e) {
      if (mine === generation) fail(`${url}: ${e.message}; retrying`);
    }
    if (mine === generation) timer = setTimeout(refresh, POLL_MS);
  }

  function chooseWindow(w) {
    select.value = w;
    apiLink.href = '/api/mesh?window=' + w;
    apiLink.textContent = '/api/mesh?window=' + w;
  }

  const asked = new URLSearchParams(location.search).get('window');
  chooseWindow(WINDOWS.includes(asked) ? asked : select.value);
  select.addEventListener('change', () => {
    chooseWindow(select.value);
    history.replaceState(null, '', '?window=' + select.value);
    refresh();
  });
  refresh();
})();
