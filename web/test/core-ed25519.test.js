// The strict verification rules (format.md section 2, ed25519-dalek's verify_strict) that
// WebCrypto alone does not give: a small-order key signs nothing, a malleated signature
// (S + L) is refused, a small-order R is refused; RFC 8032's test 1 still verifies.

import { test } from 'node:test';
import assert from 'node:assert/strict';

import { fromHex, utf8 } from '../src/format/bytes.js';
import { isValidPublicKey, keyFromSeed, sign, verify } from '../src/format/ed25519.js';
import { parseKey } from '../src/format/ids.js';
import { DOMAIN_KEY_FINGERPRINT, DOMAIN_RECORD_SIGNATURE, DOMAIN_RECEIPT_SIGNATURE } from '../src/format/primitives.js';

const hex = (/** @type {string} */ s) => /** @type {Uint8Array} */ (fromHex(s));

test('RFC 8032 test 1 signs and verifies (the empty domain reaches the raw primitive)', async () => {
  const { privateKey, publicKey } = await keyFromSeed(hex('9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60'));
  assert.equal(Buffer.from(publicKey).toString('hex'), 'd75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a');
  const sig = await sign(privateKey, new Uint8Array(0), new Uint8Array(0));
  assert.equal(Buffer.from(sig).toString('hex'), 'e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b');
  assert.ok(await verify(publicKey, new Uint8Array(0), new Uint8Array(0), sig));
});

test('a signature does not cross domains', async () => {
  const { privateKey, publicKey } = await keyFromSeed(new Uint8Array(32).fill(7));
  const sig = await sign(privateKey, DOMAIN_RECORD_SIGNATURE, utf8('payload'));
  assert.ok(await verify(publicKey, DOMAIN_RECORD_SIGNATURE, utf8('payload'), sig));
  assert.ok(!(await verify(publicKey, DOMAIN_RECEIPT_SIGNATURE, utf8('payload'), sig)));
});

test('a malleated signature (S + L) is refused: one message has one signature per key', async () => {
  const { privateKey, publicKey } = await keyFromSeed(new Uint8Array(32).fill(7));
  const sig = await sign(privateKey, DOMAIN_KEY_FINGERPRINT, utf8('message'));
  const L = hex('edd3f55c1a631258d69cf7a2def9de1400000000000000000000000000000010');
  const m = sig.slice();
  let carry = 0;
  for (let i = 0; i < 32; i++) {
    const s = m[32 + i] + L[i] + carry;
    m[32 + i] = s & 0xff;
    carry = s >> 8;
  }
  assert.equal(carry, 0);
  assert.ok(await verify(publicKey, DOMAIN_KEY_FINGERPRINT, utf8('message'), sig));
  assert.ok(!(await verify(publicKey, DOMAIN_KEY_FINGERPRINT, utf8('message'), m)));
});

test('a small-order key signs nothing and is refused wherever a key is read', async () => {
  const identity = new Uint8Array(32);
  identity[0] = 1;
  const forged = new Uint8Array(64);
  forged[0] = 1;
  assert.ok(!isValidPublicKey(identity));
  assert.ok(!(await verify(identity, DOMAIN_KEY_FINGERPRINT, utf8('any message'), forged)));
  assert.throws(() => parseKey(`ed25519:${Buffer.from(identity).toString('hex')}`), /weak small-order/);
  // Not a curve point at all.
  assert.ok(!isValidPublicKey(hex('0200000000000000000000000000000000000000000000000000000000000000')));
});
