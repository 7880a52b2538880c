// The uploader facing a server whose log forks: the first receipt names a tree that does
// not extend the head the phone holds, so the receipt is not stored, log.inconsistent is
// shown, nothing more is sent to that server and every record stays in the outbox. The
// server is scripted (an object in place of the API client): it signs real receipts and
// tree heads with a WebCrypto key.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { generateX25519Identity, identityToRecipient } from 'age-encryption';

import { randomBytes, toHex } from '../src/format/bytes.js';
import { generateKeyPair, publicKeyBytes } from '../src/format/ed25519.js';
import { fingerprint } from '../src/format/ids.js';
import { TREE_HEAD } from '../src/format/log.js';
import { RECEIPT } from '../src/format/receipt.js';
import { readSignedRecord, recordHash, recordSeq } from '../src/format/record.js';
import { signObject, signedBytes } from '../src/format/signed.js';
import { Refusal } from '../src/protocol/code.js';
import { Device } from '../src/device.js';
import { LogCheck } from '../src/vault/logcheck.js';
import { MemoryTestStore } from '../src/vault/store.js';
import { Uploader } from '../src/vault/uploader.js';

test('a forked log stops the uploader: log.inconsistent, no receipt stored, everything kept', { timeout: 30000 }, async () => {
  const device = await Device.open({ store: new MemoryTestStore() });
  const keys = await generateKeyPair();
  const server = await generateKeyPair();
  const serverKey = await publicKeyBytes(server.publicKey);
  const deviceKey = await publicKeyBytes(keys.publicKey);
  await device.outbox.saveEnrollment({
    origin: 'http://scripted', serverKey, serverFingerprint: await fingerprint(serverKey), deviceKey, privateKey: keys.privateKey,
    certificate: new Uint8Array(0), caseRecipients: new Uint8Array(0), recipients: [await identityToRecipient(await generateX25519Identity())],
    tlsSha256: null, label: 'test', enrolledAtUs: 0,
  });
  const rec = await device.beginRecording({ container: 3, streams: [], input: 'x', software: 'x', targetSegmentMs: 2000, maxSegmentMs: 4000 });
  await rec.addSegment({ plaintext: new Uint8Array(100), wallFirstUs: Date.now() * 1000, wallLastUs: Date.now() * 1000, mediaStartUs: 0,
    mediaEndUs: 2000000, streamPackets: [], videoFrames: 0, packetDigest: new Uint8Array(32), cut: 3 });
  await rec.end({ reason: 1 });

  const head = await signObject(TREE_HEAD, { treeSize: 5n, rootHash: randomBytes(32), timestampUs: 1n }, server.privateKey);
  const calls = { put: 0, consistency: 0 };
  const api = {
    async serverInfo() { return {}; },
    async logHead() { return { tree_head: toHex(signedBytes(head)) }; },
    async receipts() { throw new Refusal(404, 'not_found', 'no such recording'); },
    /** @param {string} _id @param {number} _seq @param {Uint8Array} body */
    async putRecord(_id, _seq, body) {
      calls.put++;
      const { signed } = readSignedRecord(body);
      const r = signed.record;
      const receipt = await signObject(RECEIPT, {
        recordingId: r.recordingId, seq: recordSeq(r), recordHash: await recordHash(signed.bytes),
        ciphertextSha256: r.type === 'segment' ? r.ciphertextSha256 : null, deviceKey, receivedAtUs: 2n,
        logIndex: 8n, treeSize: 9n, treeRoot: randomBytes(32),
      }, server.privateKey);
      return signedBytes(receipt);
    },
    async consistency(from, to) {
      calls.consistency++;
      return { from: Number(from), to: Number(to), proof: [toHex(randomBytes(32))] };
    },
  };
  const logCheck = new LogCheck(device.outbox, /** @type {any} */ (api), serverKey);
  const up = new Uploader({ outbox: device.outbox, api: /** @type {any} */ (api), logCheck, options: { idleMs: 50, concurrency: 1 } });
  up.start();
  const end = Date.now() + 10000;
  while (!up.status().inconsistent && Date.now() < end) await new Promise((r) => setTimeout(r, 20));
  // Give it time to (wrongly) send more.
  await new Promise((r) => setTimeout(r, 500));
  await up.stop();
  const st = up.status();
  assert.ok(st.inconsistent, 'log.inconsistent is shown');
  assert.equal(st.lastError?.code, 'log.inconsistent');
  assert.equal(calls.put, 1, 'nothing more is sent to that server');
  assert.equal(calls.consistency, 1);
  assert.equal(device.outbox.pending().length, 3, 'every record stays in the outbox');
  assert.equal(device.outbox.held?.treeSize, 5n, 'the forked tree is not held');
  assert.equal((await device.outbox.store.entries('ciphertext')).length, 1, 'nothing is deleted');
  const ev = /** @type {any} */ (device.outbox.inconsistency);
  assert.equal(ev.code, 'log.inconsistent');
  assert.equal(ev.offered.source, 'receipt');
  assert.equal(ev.held.source, 'tree-head');
});
