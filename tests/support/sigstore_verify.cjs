// Verifies a Sigstore bundle with a public key, through sigstore-js (@sigstore/bundle, @sigstore/verify): the
// verifier the signing tests trust, written by the Sigstore project, not here. This file only feeds it.
//
//   node sigstore_verify.cjs BUNDLE.json PUBLIC_KEY.pem [ARTIFACT]
//
// ARTIFACT: the signed bytes of a message-signature bundle (a DSSE bundle carries its payload). No transparency
// log, certificate log or timestamp is required: key-signed bundles pushed without Rekor have none (as cosign's
// `verify --key ... --insecure-ignore-tlog`). Prints {"verified": true, "payload": BASE64|null} and exits 0, or
// prints the verifier's error and exits 1.
"use strict";
const crypto = require("crypto");
const fs = require("fs");
const { bundleFromJSON } = require("@sigstore/bundle");
const { Verifier, toSignedEntity, toTrustMaterial } = require("@sigstore/verify");

const [bundlePath, keyPath, artifactPath] = process.argv.slice(2);
try {
  const bundle = bundleFromJSON(JSON.parse(fs.readFileSync(bundlePath, "utf8")));
  const publicKey = crypto.createPublicKey(fs.readFileSync(keyPath, "utf8"));
  const emptyRoot = { certificateAuthorities: [], timestampAuthorities: [], tlogs: [], ctlogs: [] };
  const trust = toTrustMaterial(emptyRoot, () => ({ publicKey, validFor: () => true }));
  const verifier = new Verifier(trust, { tlogThreshold: 0, ctlogThreshold: 0, timestampThreshold: 0 });
  const artifact = artifactPath ? fs.readFileSync(artifactPath) : undefined;
  verifier.verify(toSignedEntity(bundle, artifact));
  const payload = bundle.content.$case === "dsseEnvelope" ? Buffer.from(bundle.content.dsseEnvelope.payload).toString("base64") : null;
  console.log(JSON.stringify({ verified: true, payload }));
} catch (err) {
  console.log(JSON.stringify({ verified: false, error: String(err && (err.message || err)), code: err && err.code }));
  process.exit(1);
}
