// Every vector file in tests/vectors/ and the folders below it (protocol/, web/) through the
// page's JavaScript, expecting the answers the Rust drivers give (format/tests/vectors.rs,
// protocol/tests/vectors.rs, vault/tests/typage.rs). A vector the JavaScript cannot judge
// fails; nothing is skipped but the bundle-level vectors (tests/vectors/bundles, see below).

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, existsSync } from 'node:fs';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';

import { equal, fromHex, sha256, toHex } from '../src/format/bytes.js';
import { keyFromSeed } from '../src/format/ed25519.js';
import { fingerprint, keyToText, parseKey } from '../src/format/ids.js';
import { encodeRecord, parseSignedRecord, recordHash, recordSeq, verifyRecord } from '../src/format/record.js';
import { verdict, verifyChain } from '../src/format/chain.js';
import { leafHash, verifyConsistency, verifyInclusion } from '../src/format/merkle.js';
import { parseSigned, verifySigned } from '../src/format/signed.js';
import { RECEIPT } from '../src/format/receipt.js';
import { TREE_HEAD } from '../src/format/log.js';
import { CASE_RECIPIENTS } from '../src/format/recipients.js';
import { VectorFile } from '../src/format/vectors.js';
import { requestMessage, verifyRequest } from '../src/protocol/request.js';
import { checkEnrollAnswer, enrollRequest, enrollmentMessage, enrollProofVerifies } from '../src/protocol/body.js';
import { EnrollLink } from '../src/protocol/link.js';
import { Decrypter } from 'age-encryption';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'tests', 'vectors');

/** @param {unknown} e */
const codeOf = (e) => /** @type {{code?: string}} */ (e).code ?? String(e);

/** @param {() => Promise<void>} f */
async function merkleOutcome(f) {
  try {
    await f();
    return 'ok';
  } catch (e) {
    return `error: ${codeOf(e)}`;
  }
}

/**
 * The packet digest of a vector through web-media's digest.js (web/src/media/digest.js).
 * @param {VectorFile} v
 */
async function packetDigest(v) {
  const path = join(dirname(fileURLToPath(import.meta.url)), '..', 'src', 'media', 'digest.js');
  assert.ok(existsSync(path), 'web/src/media/digest.js is missing: the packet-digest vectors cannot be judged');
  const mod = await import('../src/media/digest.js');
  const streams = v.all('stream').map((s) => {
    const [kind, codec, framing] = s.split(' ');
    const f = framing.startsWith('length') ? Number(framing.slice('length'.length)) : framing;
    return { kind: kind === 'video' ? 1 : kind === 'audio' ? 2 : 3, codec, framing: /** @type {any} */ (f) };
  });
  const d = new mod.PacketDigester(streams);
  for (const p of v.all('packet')) {
    const [stream, key, hex] = p.split(' ');
    assert.ok(d.push(Number(stream), key === 'key', /** @type {Uint8Array} */ (fromHex(hex))), 'a packet of a known stream');
  }
  return `digest ${toHex(d.finish())}`;
}

const KIND_NAMES = ['', 'video', 'audio', 'other'];

/**
 * The optional record fields a vector names (`rotation`, `dropped-stream`,
 * `source-duration-us`) are what the record holds; a vector that names none holds none, as
 * format/tests/vectors.rs checks them.
 * @param {VectorFile} v
 * @param {import('../src/format/record.js').Record} rec
 */
function checkOptionalFields(v, rec) {
  const rotation = rec.type === 'header' && rec.rotation !== undefined ? String(rec.rotation) : null;
  const dropped = rec.type === 'header' ? (rec.droppedStreams ?? []).map((d) => `${KIND_NAMES[d.kind]} ${d.codec}`) : [];
  const source = rec.type === 'end' && rec.sourceDurationUs !== undefined ? String(rec.sourceDurationUs) : null;
  assert.equal(rotation, v.has('rotation') ? v.one('rotation') : null, 'rotation');
  assert.deepEqual(dropped, v.all('dropped-stream'), 'dropped streams');
  assert.equal(source, v.has('source-duration-us') ? v.one('source-duration-us') : null, 'source duration');
}

/** @param {VectorFile} v */
async function run(v) {
  switch (v.kind) {
    case 'record': {
      let r;
      try {
        r = parseSignedRecord(v.bytes('data'));
      } catch (e) {
        return `error: ${codeOf(e)}`;
      }
      if (!(await verifyRecord(r, parseKey(v.one('device-key'))))) return 'failure: record.signature.invalid';
      if (v.has('record-hash')) assert.equal(toHex(await recordHash(r.bytes)), v.one('record-hash'), 'record hash');
      checkOptionalFields(v, r.record);
      // The page's encoder writes the record Rust wrote, byte for byte.
      assert.equal(toHex(encodeRecord(r.record)), toHex(r.bytes), 're-encoded');
      return 'ok';
    }
    case 'chain': {
      const report = await verifyChain(v.bytes('data'), parseKey(v.one('device-key')));
      const fails = [...new Set(report.checks.filter((c) => c.state === 'failure').map((c) => c.code))].sort();
      const out = verdict(report);
      if (out === 'intact-cut-off') return `intact-cut-off ${report.cutOff?.lastSeq}`;
      if (out === 'tampered') return `tampered: ${fails.join(' ')}`;
      return out;
    }
    case 'merkle-inclusion':
      return merkleOutcome(async () => verifyInclusion(await leafHash(v.bytes('leaf-data')), BigInt(v.one('index')),
        BigInt(v.one('tree-size')), v.hashes('proof'), v.bytes('root')));
    case 'merkle-consistency':
      return merkleOutcome(async () => verifyConsistency(BigInt(v.one('old-size')), BigInt(v.one('new-size')),
        v.bytes('old-root'), v.bytes('new-root'), v.hashes('proof')));
    case 'packet-digest':
      return packetDigest(v);
    case 'receipt':
    case 'tree-head': {
      const def = v.kind === 'receipt' ? RECEIPT : TREE_HEAD;
      let s;
      try {
        s = parseSigned(/** @type {import('../src/format/signed.js').ObjectDef<any>} */ (def), v.bytes('data'));
      } catch (e) {
        return `error: ${codeOf(e)}`;
      }
      return (await verifySigned(def, s, parseKey(v.one('server-key')))) ? 'ok' : `failure: ${v.kind}.signature.invalid`;
    }
    case 'fingerprint':
      return `fingerprint ${await fingerprint(parseKey(v.one('key')))}`;
    // --- protocol/ ---
    case 'request-signature': {
      const body = v.bytes('body');
      assert.ok(equal(v.bytes('body-sha256'), await sha256(body)), 'body-sha256');
      const server = parseKey(v.one('server-key'));
      const device = parseKey(v.one('custody-device'));
      const nonce = /** @type {Uint8Array} */ (fromHex(v.one('custody-nonce')));
      const ts = BigInt(v.one('custody-timestamp'));
      const msg = requestMessage(server, v.one('method'), v.one('path'), ts, nonce, await sha256(body));
      assert.equal(toHex(msg), toHex(v.bytes('message')), 'message');
      const { publicKey } = await keyFromSeed(v.bytes('device-secret'));
      assert.ok(equal(publicKey, device), 'the device key is the secret\'s');
      const ok = await verifyRequest(device, server, v.one('method'), v.one('path'), ts, nonce, await sha256(body), v.one('custody-signature'));
      return ok ? 'ok' : 'failure: auth.signature';
    }
    case 'enroll-request': {
      const req = JSON.parse(v.one('json'));
      const token = v.bytes('token');
      assert.equal(req.token, toHex(token));
      assert.equal(toHex(await enrollmentMessage(token, parseKey(req.device_key))), toHex(v.bytes('message')));
      const { privateKey, publicKey } = await keyFromSeed(v.bytes('device-secret'));
      assert.deepEqual(await enrollRequest(privateKey, publicKey, token), req, 'the same request, byte for byte');
      return (await enrollProofVerifies(req)) ? 'ok' : 'failure: enroll.proof';
    }
    case 'enroll-answer': {
      const a = JSON.parse(v.one('json'));
      try {
        const c = await checkEnrollAnswer(a, parseKey(v.one('device-key')));
        assert.deepEqual(c.caseRecipients.value.recipients, a.recipients);
        return 'ok';
      } catch (e) {
        return `failure: ${/** @type {{field?: string}} */ (e).field ?? e}`;
      }
    }
    case 'ingest-receipt': {
      const record = parseSignedRecord(v.bytes('body'));
      const r = parseSigned(RECEIPT, v.bytes('answer'));
      assert.equal(`/v1/recordings/${toHex(record.record.recordingId)}/records/${recordSeq(record.record)}`, v.one('path'));
      if (!(await verifySigned(RECEIPT, r, parseKey(v.one('server-key'))))) return 'failure: receipt.signature';
      if (!equal(r.value.recordHash, await recordHash(record.bytes)) || r.value.seq !== recordSeq(record.record)
        || !equal(r.value.recordingId, record.record.recordingId)) return 'failure: receipt names another record';
      return 'ok';
    }
    case 'case-recipients': {
      let c;
      try {
        c = parseSigned(CASE_RECIPIENTS, v.bytes('data'));
      } catch (e) {
        return `error: ${codeOf(e)}`;
      }
      if (!(await verifySigned(CASE_RECIPIENTS, c, parseKey(v.one('server-key'))))) return 'failure: signature';
      assert.deepEqual(c.value.recipients, v.all('recipient'));
      assert.equal(keyToText(c.value.serverKey), v.one('server-key'));
      return 'ok';
    }
    case 'enroll-link': {
      try {
        const l = EnrollLink.parse(v.one('link'));
        assert.equal(l.server, v.one('server'));
        assert.equal(toHex(l.token), toHex(v.bytes('token')));
        assert.equal(l.fingerprintText, v.one('fp'));
        assert.equal(l.toString(), v.one('link'));
        return 'ok';
      } catch (e) {
        if (e instanceof assert.AssertionError) throw e;
        return `error: ${codeOf(e)}`;
      }
    }
    // --- web/ ---
    case 'age-decrypt': {
      const d = new Decrypter();
      d.addIdentity(v.one('identity'));
      let pt;
      try {
        pt = await d.decrypt(v.bytes('ciphertext'));
      } catch (e) {
        return `failure: ${e instanceof Error ? e.message : e}`;
      }
      return equal(pt, v.bytes('plaintext')) && toHex(await sha256(pt)) === v.one('plaintext-sha256') ? 'ok' : 'failure: plaintext differs';
    }
    default:
      throw new Error(`unknown vector kind ${v.kind}: the JavaScript cannot judge it`);
  }
}

/**
 * tests/vectors and every folder below it, but tests/vectors/bundles: those are whole evidence
 * bundles (docs/format.md section 12.1), judged by verifier/tests/bundle_vectors.rs; the page
 * verifies no bundles, so it skips them deliberately.
 * @param {string} d @returns {string[]}
 */
const folders = (d) => [d, ...readdirSync(d, { withFileTypes: true })
  .filter((e) => e.isDirectory() && !(d === root && e.name === 'bundles'))
  .flatMap((e) => folders(join(d, e.name)))];

for (const dir of folders(root)) {
  const files = readdirSync(dir).filter((n) => n.endsWith('.txt')).sort();
  test(`the vectors in ${dir.slice(root.length) || 'tests/vectors'} are judged as the Rust drivers judge them`, async (t) => {
    assert.ok(files.length >= (dir === root ? 25 : 1), `only ${files.length} vectors`);
    for (const name of files) {
      await t.test(name, async () => {
        const v = new VectorFile(readFileSync(join(dir, name), 'utf8'));
        assert.equal(await run(v), v.expect, name);
      });
    }
  });
}
