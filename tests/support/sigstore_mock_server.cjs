// Fulcio, Rekor and a timestamp authority on loopback, from @sigstore/mock (the sigstore-js project's stand-ins;
// no one here wrote them). @sigstore/mock only offers request handlers (its own helpers plug them into nock,
// which intercepts requests inside one Node process); this script serves the same handlers over HTTP so that
// another process (dockyard, through sigstore-python) can reach them.
//
// Usage: node sigstore_mock_server.js DIR. Listens on 127.0.0.1 on a free port, writes DIR/trusted_root.json
// (the trusted root naming the three services' keys and certificates, as sigstore-js and sigstore-python read
// it), then prints one line `{"url": "http://127.0.0.1:PORT"}` and serves until killed.
'use strict';

const crypto = require('crypto');
const fs = require('fs');
const http = require('http');
const path = require('path');
const mock = require('@sigstore/mock');

function keyPair() {
  return crypto.generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
}

function spki(publicKey) {
  return publicKey.export({ format: 'der', type: 'spki' });
}

const FULCIO_PATH = '/api/v2/signingCert';

// Fulcio's v2 API takes the OIDC token in the request body (credentials.oidcIdentityToken) or, as sigstore-python
// sends it, as the Authorization header's bearer token; and the CSR as base64 of its PEM. The mock's handler
// reads only the first form of each (the token from the body, the CSR as PEM text), so the same request is
// handed to it in that form. Nothing else is changed: the mock still issues the certificate from what was sent.
function fulcioRequest(body, authorization) {
  let doc;
  try {
    doc = JSON.parse(body);
  } catch (e) {
    return body;
  }
  const bearer = /^Bearer\s+(.+)$/i.exec(authorization || '');
  if (!doc.credentials && bearer) doc.credentials = { oidcIdentityToken: bearer[1] };
  const csr = doc.certificateSigningRequest;
  if (typeof csr === 'string' && !csr.startsWith('-----')) {
    const decoded = Buffer.from(csr, 'base64').toString();
    if (decoded.startsWith('-----BEGIN')) doc.certificateSigningRequest = decoded;
  }
  return JSON.stringify(doc);
}

const REKOR_PATH = '/api/v1/log/entries';

// Rekor logs a `dsse` v0.0.1 entry (what sigstore-python submits for a DSSE envelope) in its canonical form: not
// the proposed envelope but its hashes and its signatures with their verifier, which is what verifiers compare
// a bundle with. The mock's log stores whatever body it is given (right for hashedrekord and intoto, whose
// proposed and canonical forms are the same), so a dsse proposal is put in Rekor's canonical form first.
function rekorEntry(body) {
  let doc;
  try {
    doc = JSON.parse(body);
  } catch (e) {
    return body;
  }
  const proposed = doc.kind === 'dsse' && doc.spec && doc.spec.proposedContent;
  if (!proposed) return body;
  const envelope = JSON.parse(proposed.envelope);
  const sha256hex = (bytes) => crypto.createHash('sha256').update(bytes).digest('hex');
  return JSON.stringify({
    apiVersion: doc.apiVersion,
    kind: 'dsse',
    spec: {
      envelopeHash: { algorithm: 'sha256', value: sha256hex(proposed.envelope) },
      payloadHash: { algorithm: 'sha256', value: sha256hex(Buffer.from(envelope.payload, 'base64')) },
      signatures: envelope.signatures.map((s) => ({ signature: s.sig, verifier: proposed.verifiers[0] })),
    },
  });
}

async function main() {
  const dir = process.argv[2];
  const server = http.createServer();
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  const url = `http://127.0.0.1:${server.address().port}`;

  const caKeys = keyPair();
  const ctKeys = keyPair();
  const tlogKeys = keyPair();
  const tsaKeys = keyPair();
  const ctlog = await mock.initializeCTLog(ctKeys);
  const ca = await mock.initializeCA(caKeys, ctlog);
  // Rekor's checkpoints name the log by the host of its URL.
  const tlog = await mock.initializeTLog(url, tlogKeys);
  const tsa = await mock.initializeTSA(tsaKeys);
  const handlers = [mock.fulcioHandler(ca), mock.rekorHandler(tlog), mock.tsaHandler(tsa)];

  server.on('request', (req, res) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', async () => {
      const handler = handlers.find((h) => req.method === 'POST' && req.url === h.path);
      if (!handler) {
        res.writeHead(404, { 'Content-Type': 'text/plain' });
        res.end(`no mock for ${req.method} ${req.url}`);
        return;
      }
      let body = Buffer.concat(chunks).toString();
      if (handler.path === FULCIO_PATH) body = fulcioRequest(body, req.headers.authorization);
      if (handler.path === REKOR_PATH) body = rekorEntry(body);
      const { statusCode, response, contentType } = await handler.fn(body);
      res.writeHead(statusCode, { 'Content-Type': contentType || 'text/plain' });
      res.end(Buffer.isBuffer(response) || typeof response === 'string' ? response : Buffer.from(response.buffer));
    });
  });

  const start = new Date(Date.now() - 60 * 60 * 1000).toISOString();
  const b64 = (bytes) => Buffer.from(bytes).toString('base64');
  const sha256 = (bytes) => crypto.createHash('sha256').update(bytes).digest();
  const tlogKey = spki(tlogKeys.publicKey);
  const ctKey = spki(ctKeys.publicKey);
  const trustedRoot = {
    mediaType: 'application/vnd.dev.sigstore.trustedroot+json;version=0.1',
    tlogs: [{
      baseUrl: url,
      hashAlgorithm: 'SHA2_256',
      publicKey: { rawBytes: b64(tlogKey), keyDetails: 'PKIX_ECDSA_P256_SHA_256', validFor: { start } },
      logId: { keyId: b64(sha256(tlogKey)) },
    }],
    certificateAuthorities: [{
      subject: { organization: 'sigstore.mock', commonName: 'sigstore' },
      uri: url,
      certChain: { certificates: [{ rawBytes: b64(ca.rootCertificate) }] },
      validFor: { start },
    }],
    ctlogs: [{
      baseUrl: url,
      hashAlgorithm: 'SHA2_256',
      publicKey: { rawBytes: b64(ctKey), keyDetails: 'PKIX_ECDSA_P256_SHA_256', validFor: { start } },
      logId: { keyId: b64(ctlog.logID) },
    }],
    timestampAuthorities: [{
      subject: { organization: 'sigstore.mock', commonName: 'sigstore-tsa' },
      uri: url,
      certChain: { certificates: [{ rawBytes: b64(tsa.intCertificate) }, { rawBytes: b64(tsa.rootCertificate) }] },
      validFor: { start },
    }],
  };
  fs.writeFileSync(path.join(dir, 'trusted_root.json'), JSON.stringify(trustedRoot, null, 2));
  process.stdout.write(JSON.stringify({ url }) + '\n');
}

main().catch((e) => {
  process.stderr.write(`${e.stack || e}\n`);
  process.exit(1);
});
