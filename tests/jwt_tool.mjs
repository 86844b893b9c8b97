#!/usr/bin/env node
// A JWT issuer for the integration tests, on Node's own crypto (no package):
//   node tests/jwt_tool.mjs keys DIR [PREFIX]   RSA 2048 (kid PREFIX-rs), EC P-256 (PREFIX-es), Ed25519 (PREFIX-ed):
//                                               DIR/PREFIX-*.pem private keys, DIR/PREFIX-jwks.json the public JWKS
//   node tests/jwt_tool.mjs sign DIR KID ALG CLAIMS_JSON [ascii]
//                                               a compact JWS (RS256, PS256, ES256 or EdDSA) with the key KID;
//                                               claims "exp"/"nbf"/"iat" given as "+N"/"-N" are now +/- N seconds;
//                                               with "ascii" the payload JSON writes every non-ASCII character as a
//                                               \uXXXX escape (astral ones as a surrogate pair), as Python's json.dumps
//                                               and Java issuers do, instead of raw UTF-8
//   node tests/jwt_tool.mjs sign-many DIR KID ALG N CLAIMS_JSON
//                                               N tokens, one a line, each with sub "user-I" and a fresh jti
//                                               (the benchmarks' many users)
//   node tests/jwt_tool.mjs hs256-with DIR KID CLAIMS_JSON
//                                               key confusion: HS256 whose HMAC secret is KID's public key PEM
//   node tests/jwt_tool.mjs none CLAIMS_JSON    alg "none", empty signature
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';

const b64u = (buf) => Buffer.from(buf).toString('base64url');
const [cmd, ...args] = process.argv.slice(2);

function claims(json) {
  const c = JSON.parse(json);
  const now = Math.floor(Date.now() / 1000);
  for (const k of ['exp', 'nbf', 'iat'])
    if (typeof c[k] === 'string' && /^[+-]\d+$/.test(c[k])) c[k] = now + Number(c[k]);
  return c;
}

const asciiJson = (v) =>
  JSON.stringify(v).replace(/[\u007f-\uffff]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);

function compact(header, payload, sign, ascii = false) {
  const input = `${b64u(JSON.stringify(header))}.${b64u(ascii ? asciiJson(payload) : JSON.stringify(payload))}`;
  return `${input}.${b64u(sign(Buffer.from(input)))}`;
}

function signer(dir, kid, alg) {
  const key = crypto.createPrivateKey(fs.readFileSync(path.join(dir, `${kid}.pem`)));
  const sign = {
    RS256: (d) => crypto.sign('sha256', d, key),
    PS256: (d) => crypto.sign('sha256', d, { key, padding: crypto.constants.RSA_PKCS1_PSS_PADDING, saltLength: 32 }),
    ES256: (d) => crypto.sign('sha256', d, { key, dsaEncoding: 'ieee-p1363' }),
    EdDSA: (d) => crypto.sign(null, d, key),
  }[alg];
  if (!sign) throw new Error(`unknown alg ${alg}`);
  return sign;
}

if (cmd === 'keys') {
  const [dir, prefix = 'k'] = args;
  fs.mkdirSync(dir, { recursive: true });
  const kinds = {
    rs: crypto.generateKeyPairSync('rsa', { modulusLength: 2048 }),
    es: crypto.generateKeyPairSync('ec', { namedCurve: 'P-256' }),
    ed: crypto.generateKeyPairSync('ed25519'),
  };
  const keys = [];
  for (const [k, pair] of Object.entries(kinds)) {
    const kid = `${prefix}-${k}`;
    fs.writeFileSync(path.join(dir, `${kid}.pem`), pair.privateKey.export({ type: 'pkcs8', format: 'pem' }));
    fs.writeFileSync(path.join(dir, `${kid}.pub.pem`), pair.publicKey.export({ type: 'spki', format: 'pem' }));
    keys.push({ ...pair.publicKey.export({ format: 'jwk' }), kid, use: 'sig' });
  }
  fs.writeFileSync(path.join(dir, `${prefix}-jwks.json`), JSON.stringify({ keys }));
} else if (cmd === 'sign') {
  const [dir, kid, alg, json, form] = args;
  if (form !== undefined && form !== 'ascii') throw new Error(`unknown form ${form} (expected ascii)`);
  process.stdout.write(compact({ alg, typ: 'JWT', kid }, claims(json), signer(dir, kid, alg), form === 'ascii'));
} else if (cmd === 'sign-many') {
  const [dir, kid, alg, n, json] = args;
  const sign = signer(dir, kid, alg);
  const out = [];
  for (let i = 0; i < Number(n); i++)
    out.push(compact({ alg, typ: 'JWT', kid }, { ...claims(json), sub: `user-${i}`, jti: crypto.randomUUID() }, sign));
  process.stdout.write(`${out.join('\n')}\n`);
} else if (cmd === 'hs256-with') {
  const [dir, kid, json] = args;
  const secret = fs.readFileSync(path.join(dir, `${kid}.pub.pem`));
  process.stdout.write(compact({ alg: 'HS256', typ: 'JWT', kid }, claims(json),
    (d) => crypto.createHmac('sha256', secret).update(d).digest()));
} else if (cmd === 'none') {
  const [json] = args;
  const input = `${b64u(JSON.stringify({ alg: 'none', typ: 'JWT' }))}.${b64u(JSON.stringify(claims(json)))}`;
  process.stdout.write(`${input}.`);
} else {
  process.stderr.write('usage: jwt_tool.mjs keys|sign|sign-many|hs256-with|none ...\n');
  process.exit(2);
}
