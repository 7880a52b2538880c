// A whole recording through the device façade with the in-memory test store: header,
// three segments and an end record, sealed with typage and signed with a WebCrypto key;
// the saved chain is checked by the vectors' rules (format/chain.js) and every sealed
// segment opens to its plaintext with the record's hashes. Also: nothing of a segment is
// saved when the quota is full, and the chain goes on after it.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Decrypter, generateX25519Identity, identityToRecipient } from 'age-encryption';

import { concat, equal, sha256, toHex } from '../src/format/bytes.js';
import { verdict, verifyChain } from '../src/format/chain.js';
import { generateKeyPair, publicKeyBytes } from '../src/format/ed25519.js';
import { fingerprint } from '../src/format/ids.js';
import { parseSignedRecord } from '../src/format/record.js';
import { Device, DeviceError } from '../src/device.js';
import { MemoryTestStore } from '../src/vault/store.js';

/** A device enrolled by hand (no server: this test is about what the phone saves). */
async function enrolledDevice(recipients, store = new MemoryTestStore()) {
  const device = await Device.open({ store });
  const keys = await generateKeyPair();
  const server = await generateKeyPair();
  const serverKey = await publicKeyBytes(server.publicKey);
  await device.outbox.saveEnrollment({
    origin: 'http://127.0.0.1:9', serverKey, serverFingerprint: await fingerprint(serverKey),
    deviceKey: await publicKeyBytes(keys.publicKey), privateKey: keys.privateKey, certificate: new Uint8Array(0),
    caseRecipients: new Uint8Array(0), recipients, tlsSha256: null, label: 'test', enrolledAtUs: Date.now() * 1000,
  });
  return { device, store, deviceKey: await publicKeyBytes(keys.publicKey) };
}

const streams = [
  { kind: 1, codec: 'vp8', width: 640, height: 480, frameRateNum: 0, frameRateDen: 1, sampleRate: 0, channels: 0, timeBaseNum: 1, timeBaseDen: 1000 },
  { kind: 2, codec: 'opus', width: 0, height: 0, frameRateNum: 0, frameRateDen: 1, sampleRate: 48000, channels: 1, timeBaseNum: 1, timeBaseDen: 1000 },
];

/** @param {number} n @param {number} size */
function segment(n, size = 50000) {
  const plaintext = new Uint8Array(size);
  for (let i = 0; i < size; i++) plaintext[i] = (i * 7 + n * 13) & 0xff;
  const t0 = Date.now() * 1000;
  return {
    plaintext, wallFirstUs: t0 + n * 2000000, wallLastUs: t0 + n * 2000000 + 1950000,
    mediaStartUs: (n - 1) * 2000000, mediaEndUs: n * 2000000, streamPackets: [40, 100], videoFrames: 40,
    packetDigest: new Uint8Array(32).fill(n), cut: 1,
  };
}

/** The chain as records.bin would hold it, from what the store kept. */
function chainBytes(device, id) {
  return concat(...device.outbox.recordsOf(id).map((r) => r.bytes));
}

test('a whole recording is saved as a chain that verifies intact and complete, and every segment opens', async () => {
  const identity = await generateX25519Identity();
  const { device, store, deviceKey } = await enrolledDevice([await identityToRecipient(identity)]);
  const rec = await device.beginRecording({
    container: 3, streams, input: 'browser:MediaRecorder video/webm;codecs=vp8,opus', software: 'custody capture page test',
    targetSegmentMs: 2000, maxSegmentMs: 4000,
  });
  assert.match(rec.id, /^[0-9a-f]{32}$/);
  const plaintexts = [];
  for (let n = 1; n <= 3; n++) {
    const s = segment(n);
    if (n === 3) s.cut = 3;
    plaintexts.push(s.plaintext);
    assert.deepEqual(await rec.addSegment(s), { seq: n });
  }
  assert.deepEqual(await rec.end({ reason: 1 }), { seq: 4 });

  const report = await verifyChain(chainBytes(device, rec.id), deviceKey);
  assert.equal(verdict(report), 'intact-complete', JSON.stringify(report.checks.filter((c) => c.state !== 'ok'), (_, v) => typeof v === 'bigint' ? String(v) : v));
  const header = report.records[0].record;
  assert.equal(header.type, 'header');
  assert.equal(header.container, 3);
  assert.deepEqual(header.streams, streams);

  const d = new Decrypter();
  d.addIdentity(identity);
  for (let n = 1; n <= 3; n++) {
    const r = parseSignedRecord(device.outbox.record(rec.id, n).bytes).record;
    assert.equal(r.type, 'segment');
    const ct = await store.get('ciphertext', `${rec.id}/${String(n).padStart(12, '0')}`);
    assert.ok(ct instanceof Uint8Array, 'the sealed segment is kept until its receipt');
    assert.equal(toHex(await sha256(ct)), toHex(r.ciphertextSha256));
    assert.equal(BigInt(ct.length), r.ciphertextLen);
    const pt = await d.decrypt(ct);
    assert.ok(equal(pt, plaintexts[n - 1]));
    assert.equal(toHex(await sha256(pt)), toHex(r.plaintextSha256));
  }
  // No plaintext in the store: search every value for a run of a segment's bytes.
  const needle = toHex(plaintexts[1].subarray(1000, 1064));
  for (const s of ['meta', 'recordings', 'records', 'ciphertext']) {
    for (const { value } of await store.entries(s)) {
      const bytes = value instanceof Uint8Array ? [value] : Object.values(value ?? {}).filter((v) => v instanceof Uint8Array);
      for (const b of bytes) assert.ok(!toHex(b).includes(needle), `plaintext found in ${s}`);
    }
  }
  const st = device.status();
  assert.equal(st.recordings.length, 1);
  assert.deepEqual({ ...st.recordings[0], startedAtUs: 0 }, { id: rec.id, startedAtUs: 0, segments: 3, receipted: 0, ended: true, safeUpToUs: 0 });
  assert.equal(st.outbox.count, 5);
});

test('a full quota refuses a segment with a clear error, loses nothing sealed, and the chain goes on', async () => {
  const identity = await generateX25519Identity();
  const store = new MemoryTestStore({ quotaBytes: 150000 });
  const { device, deviceKey } = await enrolledDevice([await identityToRecipient(identity)], store);
  const rec = await device.beginRecording({ container: 3, streams, input: 'browser', software: 'test', targetSegmentMs: 2000, maxSegmentMs: 4000 });
  await rec.addSegment(segment(1, 60000));
  await rec.addSegment(segment(2, 60000));
  await assert.rejects(rec.addSegment(segment(3, 60000)), (e) => e instanceof DeviceError && e.code === 'quota');
  assert.equal(device.status().lastError?.code, 'quota');
  store.quotaBytes = Infinity;
  const s4 = segment(4, 1000);
  assert.deepEqual(await rec.addSegment(s4), { seq: 3 }, 'the next segment takes the position the refused one did not');
  assert.equal(device.status().lastError, null);
  await rec.end({ reason: 1 });
  const report = await verifyChain(chainBytes(device, rec.id), deviceKey);
  // Intact and complete; the lost segment shows as a media discontinuity (a warning).
  assert.equal(verdict(report), 'intact-complete');
  assert.ok(report.checks.some((c) => c.code === 'media.discontinuity'));
});

test('a recording needs an enrollment and a recipient', async () => {
  const device = await Device.open({ store: new MemoryTestStore() });
  await assert.rejects(device.beginRecording({ container: 3, streams, input: 'x', software: 'x', targetSegmentMs: 2000, maxSegmentMs: 4000 }),
    (e) => e instanceof DeviceError && e.code === 'not.enrolled');
  const { device: d2 } = await enrolledDevice([]);
  await assert.rejects(d2.beginRecording({ container: 3, streams, input: 'x', software: 'x', targetSegmentMs: 2000, maxSegmentMs: 4000 }),
    (e) => e instanceof DeviceError && e.code === 'recipients.none');
});
