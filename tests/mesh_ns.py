#!/usr/bin/env python3
"""Rewrite an outrider-proxy configuration file in place for a namespace variant
of an integration test (see OUTRIDER_TEST_VARIANT in tests/lib.sh).

Usage: python3 tests/mesh_ns.py MODE NAMESPACE WORKERS FILE
  MODE implicit: the Proxy document gets metadata.namespace NAMESPACE and every
                 other document loses its metadata.namespace (so it belongs to
                 the Proxy's namespace);
  MODE explicit: every document gets metadata.namespace NAMESPACE;
  WORKERS:       when not 0, the Proxy's spec.workers.

The test configurations write metadata as one flow mapping on one line
(`metadata: {name: x, labels: {app: a}}`) or as a block (`metadata:` then
indented fields); spec.workers as an indented `workers: N` line or a field of a
one-line flow `spec: {...}`. Anything else is refused, so a variant never runs
on a file it did not rewrite. Idempotent.
"""
import re
import sys


def split_top(s):
    """Split the inside of a flow mapping at its top-level commas."""
    parts, depth, cur, quote = [], 0, "", None
    for c in s:
        if quote:
            cur += c
            if c == quote:
                quote = None
            continue
        if c in "'\"":
            quote = c
        elif c in "{[":
            depth += 1
        elif c in "}]":
            depth -= 1
        elif c == "," and depth == 0:
            parts.append(cur.strip())
            cur = ""
            continue
        cur += c
    if cur.strip():
        parts.append(cur.strip())
    return parts


def set_field(flow, key, value):
    """flow: the text inside the braces. value None removes the field."""
    parts = [p for p in split_top(flow) if not re.match(r"%s\s*:" % key, p)]
    if value is not None:
        parts.insert(1 if parts else 0, "%s: %s" % (key, value))
    return ", ".join(parts)


def rewrite_doc(lines, is_proxy, mode, ns, workers):
    want = ns if (mode == "explicit" or is_proxy) else None
    out, i, done = [], 0, False
    while i < len(lines):
        line = lines[i]
        m = re.match(r"^metadata:\s*\{(.*)\}\s*$", line)
        if m and not done:
            out.append("metadata: {%s}" % set_field(m.group(1), "namespace", want))
            done = True
            i += 1
            continue
        if re.match(r"^metadata:\s*$", line) and not done:
            out.append(line)
            i += 1
            block = []
            while i < len(lines) and lines[i].startswith("  "):
                block.append(lines[i])
                i += 1
            block = [b for b in block if not re.match(r"^  namespace:", b)]
            if want is not None:
                block.insert(0, "  namespace: %s" % want)
            out.extend(block)
            done = True
            continue
        out.append(line)
        i += 1
    if not done:
        raise SystemExit("mesh_ns.py: a document without a metadata line I can rewrite:\n" + "\n".join(lines))
    if is_proxy and workers:
        for k, line in enumerate(out):
            m = re.match(r"^spec:\s*\{(.*)\}\s*$", line)
            if m:
                out[k] = "spec: {%s}" % set_field(m.group(1), "workers", workers)
                break
            if re.match(r"^  workers:", line):
                out[k] = "  workers: %s" % workers
                break
        else:
            k = next((k for k, line in enumerate(out) if re.match(r"^spec:\s*$", line)), None)
            if k is None:
                raise SystemExit("mesh_ns.py: no spec to set workers in:\n" + "\n".join(out))
            out.insert(k + 1, "  workers: %s" % workers)
    return out


def main():
    mode, ns, workers, path = sys.argv[1:5]
    if mode not in ("implicit", "explicit"):
        raise SystemExit("mesh_ns.py: unknown mode " + mode)
    workers = int(workers)
    with open(path) as f:
        text = f.read()
    docs, cur = [], []
    for line in text.split("\n"):
        if line == "---":
            docs.append(cur)
            cur = []
        else:
            cur.append(line)
    docs.append(cur)
    out = []
    for d in docs:
        if not any(l.strip() and not l.lstrip().startswith("#") for l in d):
            out.append(d)
            continue
        is_proxy = any(re.match(r"^kind:\s*Proxy\s*$", l) for l in d)
        out.append(rewrite_doc(d, is_proxy, mode, ns, workers))
    with open(path, "w") as f:
        f.write("\n---\n".join("\n".join(d) for d in out))


main()
