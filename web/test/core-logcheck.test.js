// The custody-log check of docs/api.md "What the device does", against a scripted server
// (an object answering the two log routes from a tree built here): a consistent log moves
// the held head forward; a rewritten log, two roots for one size, or a `log.range` refusal
// for a size the server signed is `log.inconsistent`, recorded with its evidence, after
// which nothing more is sent; a network failure is only a retry.

import { test } from 'node:test';
import assert from 'node:assert/strict';

import { toHex, utf8 } from '../src/format/bytes.js';
import { generateKeyPair, publicKeyBytes } from '../src/format/ed25519.js';
import { keyToText } from '../src/format/ids.js';
import { consistencyProof, leafHash, root } from '../src/format/merkle.js';
import { NetworkError } from '../src/protocol/client.js';
import { Refusal } from '../src/protocol/code.js';
import { LogCheck } from '../src/vault/logcheck.js';
import { Outbox } from '../src/vault/outbox.js';
import { MemoryTestStore } from '../src/vault/store.js';

async function leaves(n, tag = 'entry') {
  return Promise.all(Array.from({ length: n }, (_, i) => leafHash(utf8(`${tag}-${i}`))));
}

/** A scripted server: answers consistency proofs over `tree` (its leaf hashes). */
function server(tree) {
  return {
    calls: 0,
    fail: /** @type {Error | null} */ (null),
    async consistency(from, to) {
      this.calls++;
      if (this.fail) throw this.fail;
      if (Number(to) > tree.length) throw new Refusal(400, 'log.range', 'no such tree');
      const proof = await consistencyProof(tree, Number(from), Number(to));
      return { from: Number(from), to: Number(to), proof: proof.map(toHex) };
    },
  };
}

async function setup(tree) {
  const outbox = await Outbox.open(new MemoryTestStore());
  const serverKey = await publicKeyBytes((await generateKeyPair()).publicKey);
  const api = server(tree);
  return { outbox, api, check: new LogCheck(outbox, /** @type {any} */ (api), serverKey), serverKey };
}

const head = async (tree, n) => ({ treeSize: BigInt(n), rootHash: await root(tree.slice(0, n)), source: /** @type {'receipt'} */ ('receipt'), signed: new Uint8Array([n]) });

test('a consistent log moves the held head forward, and an older tree is checked against it', async () => {
  const tree = await leaves(13);
  const { outbox, api, check } = await setup(tree);
  assert.deepEqual(await check.check(await head(tree, 5)), { ok: true });
  assert.equal(outbox.held?.treeSize, 5n, 'the first head seen is held as it is');
  assert.deepEqual(await check.check(await head(tree, 13)), { ok: true });
  assert.equal(outbox.held?.treeSize, 13n);
  assert.deepEqual(await check.check(await head(tree, 8)), { ok: true }, 'a smaller tree the held one extends');
  assert.equal(outbox.held?.treeSize, 13n, 'the larger stays held');
  assert.deepEqual(await check.check(await head(tree, 13)), { ok: true });
  assert.equal(api.calls, 2, 'equal sizes need no proof');
  // The held head survives a reopen of the store.
  const again = await Outbox.open(outbox.store);
  assert.equal(again.held?.treeSize, 13n);
});

test('a network failure while fetching a proof is a retry, not an inconsistency', async () => {
  const tree = await leaves(9);
  const { outbox, api, check } = await setup(tree);
  await check.check(await head(tree, 4));
  api.fail = new NetworkError('offline');
  const out = await check.check(await head(tree, 9));
  assert.ok('retry' in out);
  assert.equal(outbox.inconsistency, null);
  assert.equal(outbox.held?.treeSize, 4n);
  api.fail = null;
  assert.deepEqual(await check.check(await head(tree, 9)), { ok: true });
});

test('a rewritten log is log.inconsistent: the evidence is kept and the server is distrusted', async () => {
  const tree = await leaves(13);
  const { outbox, check, serverKey } = await setup(tree);
  await check.check(await head(tree, 5));
  // Entry 2 changed after the phone saw the head of 5; the server serves the rewritten log.
  const rewritten = [...tree];
  rewritten[2] = await leafHash(utf8('changed'));
  const { check: c2 } = { check: new LogCheck(outbox, /** @type {any} */ (server(rewritten)), serverKey) };
  const out = await c2.check(await head(rewritten, 13));
  assert.ok('inconsistent' in out, JSON.stringify(out));
  assert.match(out.inconsistent, /does not extend/);
  assert.equal(outbox.held?.treeSize, 5n, 'the forked tree is not held');
  const ev = /** @type {any} */ (outbox.inconsistency);
  assert.equal(ev.code, 'log.inconsistent');
  assert.equal(ev.serverKey, keyToText(serverKey));
  assert.equal(ev.held.treeSize, '5');
  assert.equal(ev.offered.treeSize, '13');
  assert.ok(ev.proof.length > 0, 'the proof given is kept');
  assert.ok(c2.distrusted && check.distrusted, 'every check of that server now fails');
  assert.ok('inconsistent' in (await check.check(await head(tree, 13))));
  // The evidence survives a reopen.
  assert.equal(/** @type {any} */ ((await Outbox.open(outbox.store)).inconsistency).code, 'log.inconsistent');
});

test('two roots for one size, and log.range for a size the phone holds, are inconsistencies', async () => {
  const tree = await leaves(6);
  const a = await setup(tree);
  await a.check.check(await head(tree, 6));
  const other = await leaves(6, 'other');
  const out = await a.check.check(await head(other, 6));
  assert.ok('inconsistent' in out);
  assert.match(out.inconsistent, /two different roots/);

  const b = await setup(tree.slice(0, 4));
  // The phone holds a head of 6 (from a receipt), and the server now says it has only 4.
  await b.outbox.storeHeld({ ...(await head(tree, 6)), serverKey: keyToText(b.serverKey) });
  const out2 = await b.check.check(await head(tree, 4));
  assert.ok('inconsistent' in out2);
  assert.match(out2.inconsistent, /no consistency proof/);
});
