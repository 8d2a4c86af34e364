// A Sigstore of our own on loopback: Fulcio (v1 for cosign 2, v2 for cosign 3) with a CT log,
// Rekor v1 and an optional TSA, on one port, built on @sigstore/mock's primitives.
//
//   node server.js STATE_DIR
//
// STATE_DIR/oidc.json (written by tests/testbed/sigstore.py) names the OIDC issuers this Fulcio
// trusts and their JWKS. At start the server makes its keys, writes trusted_root.json,
// signing_config.json and server.json (its URL) into STATE_DIR, and logs one JSON line per
// request to STATE_DIR/requests.log. Its keys live only in this process: restarting it makes a new
// Sigstore, so outages are simulated by a proxy in front of it, never by a restart.
'use strict';

const crypto = require('crypto');
const fs = require('fs');
const http = require('http');
const path = require('path');
require('reflect-metadata'); // @peculiar/x509 needs it loaded first
const x509 = require('@peculiar/x509');
const asn1js = require('asn1js');
const pkijs = require('pkijs');
const jose = require('jose');
const mock = require('@sigstore/mock');

const state = process.argv[2];
const oidc = JSON.parse(fs.readFileSync(path.join(state, 'oidc.json'), 'utf8'));
const requestLog = fs.openSync(path.join(state, 'requests.log'), 'a');
const jwks = jose.createLocalJWKSet(oidc.jwks);

// Fulcio's OIDs for the issuer and the CI build facts (fulcio/docs/oid-info.md).
const OID = (n) => `1.3.6.1.4.1.57264.1.${n}`;

function httpError(status, message) {
  return Object.assign(new Error(message), { status });
}

// --- Fulcio --------------------------------------------------------------------------------

async function verifyToken(token) {
  if (!token) throw httpError(401, 'no identity token');
  try {
    const { payload } = await jose.jwtVerify(token, jwks, {
      audience: 'sigstore',
      issuer: oidc.issuers,
      algorithms: ['RS256'],
    });
    return payload;
  } catch (e) {
    throw httpError(401, `There was an error processing the identity token: ${e.code || e.message}`);
  }
}

// What Fulcio puts in the certificate for a GitLab or a GitHub token: the URI SAN and the
// build extensions. Values are DER UTF8Strings, except the legacy issuer (raw bytes).
function certificateFields(claims) {
  const ext = [
    { oid: OID(1), value: claims.iss, legacy: true },
    { oid: OID(8), value: claims.iss },
  ];
  const add = (n, value) => value !== undefined && ext.push({ oid: OID(n), value: String(value) });
  if (claims.ci_config_ref_uri) {
    const server = claims.iss.replace(/\/$/, '');
    const signer = `https://${claims.ci_config_ref_uri}`;
    add(9, signer);
    add(10, claims.ci_config_sha);
    add(11, claims.runner_environment);
    add(12, `${server}/${claims.project_path}`);
    add(13, claims.sha);
    add(14, claims.ref_path);
    add(15, claims.project_id);
    add(16, `${server}/${claims.namespace_path}`);
    add(17, claims.namespace_id);
    add(18, signer);
    add(19, claims.ci_config_sha);
    add(20, claims.pipeline_source);
    add(21, `${server}/${claims.project_path}/-/jobs/${claims.job_id}`);
    add(22, claims.project_visibility);
    return { subjectAltName: signer, extensions: ext };
  }
  if (claims.job_workflow_ref) {
    const server = 'https://github.com';
    const signer = `${server}/${claims.job_workflow_ref}`;
    add(9, signer);
    add(10, claims.job_workflow_sha);
    add(11, claims.runner_environment);
    add(12, `${server}/${claims.repository}`);
    add(13, claims.sha);
    add(14, claims.ref);
    add(15, claims.repository_id);
    add(18, `${server}/${claims.workflow_ref}`);
    add(20, claims.event_name);
    add(21, `${server}/${claims.repository}/actions/runs/${claims.run_id}/attempts/${claims.run_attempt}`);
    return { subjectAltName: signer, extensions: ext };
  }
  throw httpError(400, 'the token is neither GitLab- nor GitHub-shaped (no ci_config_ref_uri or job_workflow_ref)');
}

function pemToDer(pem) {
  const b64 = pem.replace(/-----[^-]+-----/g, '').replace(/\s+/g, '');
  return Buffer.from(b64, 'base64');
}

function derToPem(der) {
  const b64 = Buffer.from(der).toString('base64').replace(/(.{64})/g, '$1\n');
  return `-----BEGIN CERTIFICATE-----\n${b64}\n-----END CERTIFICATE-----\n`;
}

// The public key to certify: cosign 2 sends publicKey.content (base64 of a PEM or DER key),
// cosign 3 a PEM in publicKeyRequest.publicKey.content; either may send a CSR instead.
function requestedKey(body) {
  const csr = body.certificateSigningRequest;
  if (csr) {
    const text = Buffer.from(csr, 'base64').toString('utf8');
    const request = new x509.Pkcs10CertificateRequest(text.includes('BEGIN') ? text : Buffer.from(csr, 'base64'));
    return Buffer.from(request.publicKey.rawData);
  }
  const content = (body.publicKeyRequest || {}).publicKey?.content || (body.publicKey || {}).content;
  if (!content) throw httpError(400, 'no public key or CSR in the request');
  if (content.includes('BEGIN')) return pemToDer(content);
  const raw = Buffer.from(content, 'base64');
  return raw.toString('utf8').includes('BEGIN') ? pemToDer(raw.toString('utf8')) : raw;
}

function bearer(req, body) {
  const header = req.headers.authorization || '';
  const found = header.match(/^Bearer\s+(.+)$/i);
  return found ? found[1].trim() : body.credentials?.oidcIdentityToken;
}

async function signingCert(ca, req, raw, version) {
  const body = JSON.parse(raw.toString('utf8'));
  const claims = await verifyToken(bearer(req, body));
  const leaf = await ca.issueCertificate({ publicKey: requestedKey(body), ...certificateFields(claims) });
  const chain = [derToPem(leaf), derToPem(ca.rootCertificate)];
  if (version === 1) {
    // Fulcio v1 answers 201 with the PEM chain; cosign 2 reads the SCT from the certificate.
    return { status: 201, type: 'application/pem-certificate-chain', body: chain.join('') };
  }
  // sigstore-go (cosign 3) accepts only 200 here.
  const answer = { signedCertificateEmbeddedSct: { chain: { certificates: chain } } };
  return { status: 200, type: 'application/json', body: JSON.stringify(answer) };
}

// --- Rekor v1 ------------------------------------------------------------------------------

// Entries are keyed by their RFC 6962 leaf hash, sha256(0x00 || body): cosign 2 checks that the
// UUID it is given is that hash. A body the log already holds gets 409, as real Rekor answers.
const entries = new Map();

function leafHash(body) {
  return crypto.createHash('sha256').update(Buffer.from([0])).update(body).digest('hex');
}

// Real Rekor stores a dsse entry canonicalized: hashes of the envelope and payload, and each
// signature with its verifier, not the proposed envelope.
function canonical(proposed) {
  if (proposed.kind !== 'dsse' || !proposed.spec?.proposedContent) return proposed;
  const { envelope, verifiers } = proposed.spec.proposedContent;
  const env = JSON.parse(envelope);
  const sha = (b) => crypto.createHash('sha256').update(b).digest('hex');
  return {
    apiVersion: proposed.apiVersion, kind: 'dsse',
    spec: {
      envelopeHash: { algorithm: 'sha256', value: sha(envelope) },
      payloadHash: { algorithm: 'sha256', value: sha(Buffer.from(env.payload, 'base64')) },
      signatures: env.signatures.map((s, i) => ({ signature: s.sig, verifier: verifiers[i] || verifiers[0] })),
    },
  };
}

async function createEntry(tlog, raw) {
  const proposed = canonical(JSON.parse(raw.toString('utf8')));
  const logged = await tlog.log(proposed);
  const entry = Object.values(logged)[0];
  const uuid = leafHash(Buffer.from(entry.body, 'base64'));
  if (entries.has(uuid)) {
    const message = `An equivalent entry already exists in the transparency log with UUID ${uuid}`;
    return {
      status: 409,
      type: 'application/json',
      headers: { Location: `/api/v1/log/entries/${uuid}` },
      body: JSON.stringify({ code: 409, message }),
    };
  }
  entries.set(uuid, entry);
  // sigstore-go reads the new entry out of the answer by the ETag, as Rekor sets it.
  const headers = { ETag: uuid, Location: `/api/v1/log/entries/${uuid}` };
  return { status: 201, type: 'application/json', headers, body: JSON.stringify({ [uuid]: entry }) };
}

function getEntry(uuid) {
  // A UUID may carry a 16-hex-digit tree id before the leaf hash.
  const key = uuid.length > 64 ? uuid.slice(-64) : uuid;
  const entry = entries.get(key);
  if (!entry) throw httpError(404, `no entry ${uuid}`);
  return { status: 200, type: 'application/json', body: JSON.stringify({ [key]: entry }) };
}

function publicKey(tlog) {
  const pem = derToPem(tlog.publicKey).replace(/CERTIFICATE/g, 'PUBLIC KEY');
  return { status: 200, type: 'application/x-pem-file', body: pem };
}

function hashesOf(entry) {
  const spec = JSON.parse(Buffer.from(entry.body, 'base64').toString('utf8')).spec || {};
  const found = [spec.data?.hash?.value, spec.content?.hash?.value, spec.content?.payloadHash?.value];
  return found.filter(Boolean).map((h) => `sha256:${h}`);
}

function retrieveEntries(raw) {
  const query = JSON.parse(raw.toString('utf8'));
  const wanted = new Set((query.entryUUIDs || []).map((u) => (u.length > 64 ? u.slice(-64) : u)));
  const answer = [...entries].filter(([uuid]) => wanted.has(uuid)).map(([uuid, e]) => ({ [uuid]: e }));
  return { status: 200, type: 'application/json', body: JSON.stringify(answer) };
}

function searchIndex(raw) {
  const query = JSON.parse(raw.toString('utf8'));
  const hash = query.hash && (query.hash.includes(':') ? query.hash : `sha256:${query.hash}`);
  const uuids = [...entries].filter(([, e]) => hashesOf(e).includes(hash)).map(([uuid]) => uuid);
  return { status: 200, type: 'application/json', body: JSON.stringify(uuids) };
}

// --- TSA (RFC 3161) ------------------------------------------------------------------------

// Go clients send a DER TimeStampReq whose nonce is wider than a JS number: the nonce is copied
// into the answer as the integer it was, bytes and all.
async function timestamp(tsa, raw) {
  const request = pkijs.TimeStampReq.fromBER(raw);
  const info = {
    artifactHash: Buffer.from(request.messageImprint.hashedMessage.valueBlock.valueHexView),
    hashAlgorithmOID: request.messageImprint.hashAlgorithm.algorithmId,
    nonce: 0,
    policyOID: request.reqPolicy || '1.3.6.1.4.1.57264.2',
    certReq: request.certReq ?? false,
  };
  const tstInfo = tsa.tstInfo.bind(tsa);
  tsa.tstInfo = (req) => Object.assign(tstInfo(req), { nonce: request.nonce });
  try {
    return { status: 200, type: 'application/timestamp-reply', body: await tsa.timestamp(info) };
  } finally {
    tsa.tstInfo = tstInfo;
  }
}

// --- trust ---------------------------------------------------------------------------------

function b64(bytes) {
  return Buffer.from(bytes).toString('base64');
}

function trustFiles(url, { ca, ctlog, tlog, tsa }) {
  const start = { start: new Date(Date.now() - 60_000).toISOString() };
  const key = (raw) => ({ rawBytes: b64(raw), keyDetails: 'PKIX_ECDSA_P256_SHA_256', validFor: start });
  const logId = (raw) => ({ keyId: b64(crypto.createHash('sha256').update(raw).digest()) });
  const root = {
    mediaType: 'application/vnd.dev.sigstore.trustedroot+json;version=0.1',
    // No `operator` fields: cosign 2.5's protobuf-specs refuses them.
    tlogs: [{ baseUrl: url, hashAlgorithm: 'SHA2_256', publicKey: key(tlog.publicKey), logId: logId(tlog.publicKey) }],
    certificateAuthorities: [{
      subject: { organization: 'sigstore.mock', commonName: 'sigstore' },
      uri: url,
      certChain: { certificates: [{ rawBytes: b64(ca.rootCertificate) }] },
      validFor: start,
    }],
    ctlogs: [{ baseUrl: url, hashAlgorithm: 'SHA2_256', publicKey: key(ctlog.publicKey), logId: { keyId: b64(ctlog.logID) } }],
    timestampAuthorities: tsa ? [{
      subject: { organization: 'sigstore.mock', commonName: 'tsa' },
      uri: `${url}/api/v1/timestamp`,
      certChain: { certificates: [{ rawBytes: b64(tsa.intCertificate) }, { rawBytes: b64(tsa.rootCertificate) }] },
      validFor: start,
    }] : [],
  };
  const service = (u) => ({ url: u, majorApiVersion: 1, validFor: start, operator: 'provenance-testbed' });
  const signing = {
    mediaType: 'application/vnd.dev.sigstore.signingconfig.v0.2+json',
    caUrls: [service(url)],
    oidcUrls: [],
    rekorTlogUrls: [service(url)],
    tsaUrls: tsa ? [service(`${url}/api/v1/timestamp`)] : [],
    rekorTlogConfig: { selector: 'ANY' },
    tsaConfig: { selector: 'ANY' },
  };
  return { root, signing };
}

// --- the server ----------------------------------------------------------------------------

function route(services, req, raw) {
  const url = new URL(req.url, 'http://x');
  const p = url.pathname;
  if (req.method === 'POST' && p === '/api/v1/signingCert') return signingCert(services.ca, req, raw, 1);
  if (req.method === 'POST' && p === '/api/v2/signingCert') return signingCert(services.ca, req, raw, 2);
  if (req.method === 'POST' && p === '/api/v1/log/entries') return createEntry(services.tlog, raw);
  if (req.method === 'POST' && p === '/api/v1/log/entries/retrieve') return retrieveEntries(raw);
  if (req.method === 'POST' && p === '/api/v1/index/retrieve') return searchIndex(raw);
  if (req.method === 'GET' && p.startsWith('/api/v1/log/entries/')) return getEntry(p.split('/').pop());
  if (req.method === 'GET' && p === '/api/v1/log/publicKey') return publicKey(services.tlog);
  if (req.method === 'POST' && p === '/api/v1/timestamp' && services.tsa) return timestamp(services.tsa, raw);
  if (req.method === 'GET' && (p === '/' || p === '/healthz')) return { status: 200, type: 'text/plain', body: 'ok\n' };
  throw httpError(404, `no route ${req.method} ${p}`);
}

function logRequest(req, status, started, note) {
  const line = { method: req.method, path: req.url, status, ms: Date.now() - started, ...(note && { note }) };
  fs.writeSync(requestLog, `${JSON.stringify(line)}\n`);
}

async function main() {
  const keyPair = () => crypto.generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
  const ctlog = await mock.initializeCTLog(keyPair());
  const ca = await mock.initializeCA(keyPair(), ctlog);
  const tsa = oidc.tsa ? await mock.initializeTSA(keyPair()) : null;

  const server = http.createServer((req, res) => {
    const started = Date.now();
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', async () => {
      let answer;
      try {
        answer = await route(services, req, Buffer.concat(chunks));
      } catch (e) {
        answer = { status: e.status || 400, type: 'application/json',
                   body: JSON.stringify({ code: e.status || 400, message: e.message }) };
      }
      res.writeHead(answer.status, { 'Content-Type': answer.type, ...(answer.headers || {}) });
      res.end(answer.body);
      logRequest(req, answer.status, started, answer.status >= 400 ? String(answer.body).slice(0, 200) : undefined);
    });
  });
  const services = { ca, ctlog, tsa, tlog: null };
  server.listen(oidc.port || 0, '127.0.0.1', async () => {
    const url = `http://127.0.0.1:${server.address().port}`;
    // The checkpoint names the log's host, so the log is made once the port is known.
    services.tlog = await mock.initializeTLog(url, keyPair());
    const { root, signing } = trustFiles(url, services);
    fs.writeFileSync(path.join(state, 'trusted_root.json'), JSON.stringify(root, null, 2));
    fs.writeFileSync(path.join(state, 'signing_config.json'), JSON.stringify(signing, null, 2));
    // Written last: its presence tells the starter that everything else is in place.
    fs.writeFileSync(path.join(state, 'server.json'), JSON.stringify({ url, pid: process.pid }));
  });
  const stop = () => server.close(() => process.exit(0));
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
}

main().catch((e) => {
  process.stderr.write(`sigstore test bed: ${e.stack || e}\n`);
  process.exit(1);
});
