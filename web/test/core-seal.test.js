// Sealing with typage, opened by other age implementations: the stock `age` binary here,
// and (through the vector file tests/vectors/web/typage-seal.txt, checked by
// vault/tests/typage.rs) the Rust age crate the verifier uses.
//
// Regenerate the vector with CUSTODY_REGENERATE_VECTORS=1 node --test test/core-seal.test.js

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Decrypter, generateX25519Identity, identityToRecipient } from 'age-encryption';

import { equal, fromHex, sha256, toHex } from '../src/format/bytes.js';
import { VectorFile } from '../src/format/vectors.js';
import { SealError, seal } from '../src/vault/sealer.js';

const vectorPath = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'tests', 'vectors', 'web', 'typage-seal.txt');

/** A segment-like plaintext: not all zeros, longer than one 64 KiB STREAM chunk. */
function plaintext(n = 70000) {
  const b = new Uint8Array(n);
  for (let i = 0; i < n; i++) b[i] = (i * 131 + (i >> 8)) & 0xff;
  return b;
}

test('a segment sealed with typage opens with the stock age binary, to the same bytes the record hashes', async () => {
  const identity = await generateX25519Identity();
  const recipient = await identityToRecipient(identity);
  const other = await identityToRecipient(await generateX25519Identity());
  const pt = plaintext();
  const s = await seal(pt, [recipient, other]);
  assert.equal(s.plaintextLen, pt.length);
  assert.equal(s.ciphertextLen, s.ciphertext.length);
  assert.ok(equal(s.plaintextSha256, await sha256(pt)));
  assert.ok(equal(s.ciphertextSha256, await sha256(s.ciphertext)));
  assert.equal(new TextDecoder().decode(s.ciphertext.subarray(0, 21)), 'age-encryption.org/v1');
  const dir = mkdtempSync(join(tmpdir(), 'custody-typage-'));
  try {
    writeFileSync(join(dir, 'identity.txt'), `${identity}\n`, { mode: 0o600 });
    writeFileSync(join(dir, 'segment.age'), s.ciphertext);
    const out = execFileSync('age', ['-d', '-i', join(dir, 'identity.txt'), join(dir, 'segment.age')]);
    assert.ok(equal(new Uint8Array(out), pt), 'age -d gives the plaintext back');
    // A tampered byte is refused by age, as the verifier refuses it.
    const bad = s.ciphertext.slice();
    bad[bad.length - 10] ^= 1;
    writeFileSync(join(dir, 'bad.age'), bad);
    assert.throws(() => execFileSync('age', ['-d', '-i', join(dir, 'identity.txt'), join(dir, 'bad.age')], { stdio: 'pipe' }));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('sealing with no recipient, or a malformed one, is refused before anything is written', async () => {
  await assert.rejects(seal(plaintext(10), []), (e) => e instanceof SealError && e.code === 'recipients.none');
  await assert.rejects(seal(plaintext(10), ['age1notarecipient']), (e) => e instanceof SealError && e.code === 'recipients.invalid');
});

test('the typage vector file holds a ciphertext that typage and the age binary open to its plaintext', async () => {
  if (process.env.CUSTODY_REGENERATE_VECTORS) {
    const identity = await generateX25519Identity();
    const pt = plaintext(70000);
    const s = await seal(pt, [await identityToRecipient(identity)]);
    const hex = (/** @type {string} */ k, /** @type {Uint8Array} */ b) => toHex(b).match(/.{1,128}/g)?.map((l) => `${k}: ${l}\n`).join('') ?? `${k}: \n`;
    writeFileSync(vectorPath, 'comment: A segment sealed by the capture page with typage (age-encryption 0.3.1) to one X25519\n'
      + 'comment: recipient; the Rust age crate (vault/tests/typage.rs) and the stock age binary\n'
      + 'comment: (web/test/core-seal.test.js) must decrypt it with the identity to the plaintext.\n'
      + 'comment: Test identity, never to be used for anything else.\n'
      + `kind: age-decrypt\nexpect: ok\nidentity: ${identity}\nplaintext-sha256: ${toHex(s.plaintextSha256)}\n`
      + hex('plaintext', pt) + hex('ciphertext', s.ciphertext));
  }
  const v = new VectorFile(readFileSync(vectorPath, 'utf8'));
  assert.equal(v.kind, 'age-decrypt');
  const d = new Decrypter();
  d.addIdentity(v.one('identity'));
  const pt = await d.decrypt(v.bytes('ciphertext'));
  assert.ok(equal(pt, v.bytes('plaintext')));
  assert.ok(equal(await sha256(pt), /** @type {Uint8Array} */ (fromHex(v.one('plaintext-sha256')))));
  const dir = mkdtempSync(join(tmpdir(), 'custody-typage-'));
  try {
    writeFileSync(join(dir, 'identity.txt'), `${v.one('identity')}\n`, { mode: 0o600 });
    writeFileSync(join(dir, 'segment.age'), v.bytes('ciphertext'));
    const out = execFileSync('age', ['-d', '-i', join(dir, 'identity.txt'), join(dir, 'segment.age')]);
    assert.ok(equal(new Uint8Array(out), v.bytes('plaintext')));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
