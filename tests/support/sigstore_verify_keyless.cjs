// Verifies a keyless image signature as `cosign verify --certificate-identity ... --certificate-oidc-issuer ...`
// does for cosign v3's bundles, with sigstore-js (@sigstore/verify; no one here wrote it):
//   1. the Sigstore bundle verifies against the trusted root: the Fulcio certificate chains to a trusted CA and
//      carries an SCT of a trusted CT log, the Rekor entry's promise and checkpoint are signed by a trusted log,
//      the DSSE signature is the certificate's key's, made while the certificate was valid;
//   2. the certificate names the expected identity (its SAN) and OIDC issuer;
//   3. the signed statement is cosign's image signature (predicate type https://sigstore.dev/cosign/sign/v1)
//      whose subject is the image's manifest digest.
// Usage: node sigstore_verify_keyless.cjs BUNDLE_JSON TRUSTED_ROOT_JSON IDENTITY ISSUER DIGEST
//        node sigstore_verify_keyless.cjs BUNDLE_JSON TRUSTED_ROOT_JSON IDENTITY ISSUER - ARTIFACT
// The second form checks a message-signature bundle over ARTIFACT's bytes (1 and 2 only: the classic scheme's
// payload names the digest itself). Prints `verified` and exits 0, or prints why not and exits 1.
'use strict';

const fs = require('fs');
const { bundleFromJSON } = require('@sigstore/bundle');
const { TrustedRoot } = require('@sigstore/protobuf-specs');
const { Verifier, toSignedEntity, toTrustMaterial } = require('@sigstore/verify');

const SIGN_PREDICATE_TYPE = 'https://sigstore.dev/cosign/sign/v1';

function main() {
  const [bundlePath, rootPath, identity, issuer, digest, artifactPath] = process.argv.slice(2);
  const bundle = bundleFromJSON(JSON.parse(fs.readFileSync(bundlePath, 'utf8')));
  const trustedRoot = TrustedRoot.fromJSON(JSON.parse(fs.readFileSync(rootPath, 'utf8')));
  const verifier = new Verifier(toTrustMaterial(trustedRoot), { tlogThreshold: 1, ctlogThreshold: 1 });
  const artifact = artifactPath ? fs.readFileSync(artifactPath) : undefined;
  verifier.verify(toSignedEntity(bundle, artifact), { subjectAlternativeName: identity, extensions: { issuer } });
  if (digest === '-') {
    process.stdout.write('verified\n');
    return;
  }

  if (!bundle.content || bundle.content.$case !== 'dsseEnvelope') {
    throw new Error('the bundle holds no DSSE envelope');
  }
  const statement = JSON.parse(Buffer.from(bundle.content.dsseEnvelope.payload).toString('utf8'));
  if (statement.predicateType !== SIGN_PREDICATE_TYPE) {
    throw new Error(`the statement's predicate type is ${statement.predicateType}, not ${SIGN_PREDICATE_TYPE}`);
  }
  const [algorithm, hex] = digest.split(':');
  const subjects = (statement.subject || []).map((s) => `${algorithm}:${(s.digest || {})[algorithm]}`);
  if (!subjects.includes(digest)) {
    throw new Error(`the statement signs ${subjects.join(', ') || 'nothing'}, not ${algorithm}:${hex}`);
  }
  process.stdout.write('verified\n');
}

try {
  main();
} catch (e) {
  process.stdout.write(`not verified: ${e.name}: ${e.message}\n`);
  process.exit(1);
}
