// The protocol pieces the vectors do not cover by themselves: the refusal codes are the
// table of docs/api.md (status and retry class, as protocol/tests/docs.rs keeps the Rust
// side), and enrollment links are read as people paste them and refused as protocol's
// link.rs refuses them.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

import { toHex } from '../src/format/bytes.js';
import { fingerprint } from '../src/format/ids.js';
import { keyFromSeed } from '../src/format/ed25519.js';
import { ALL, Code, Refusal } from '../src/protocol/code.js';
import { EnrollLink, LinkError } from '../src/protocol/link.js';

const api = readFileSync(join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'docs', 'api.md'), 'utf8');

test('the refusal codes are the table of docs/api.md, with its statuses and retry column', () => {
  const table = api.split('<!-- codes:begin -->')[1].split('<!-- codes:end -->')[0];
  const rows = table.split('\n').filter((l) => l.startsWith('| `')).map((l) => l.split('|').map((c) => c.trim()));
  assert.deepEqual(rows.map((r) => r[1].replace(/`/g, '')), ALL.map((c) => c.code), 'the same codes in the same order');
  for (const r of rows) {
    const c = /** @type {Code} */ (Code.parse(r[1].replace(/`/g, '')));
    assert.equal(String(c.status), r[2], c.code);
    const hint = r[4];
    const want = hint === 'no' ? 'never' : hint.startsWith('yes') ? 'later' : 'after-change';
    assert.equal(c.retry(), want, `${c.code}: "${hint}"`);
  }
  assert.ok(Code.parse('equivocation')?.rejectsRecord());
  assert.ok(!Code.parse('device.busy')?.rejectsRecord());
  assert.ok(!Code.parse('auth.revoked')?.rejectsRecord());
  assert.equal(Code.parse('no.such.code'), null);
});

test('a refusal body keeps its code; an answer that is not one is `unknown` with its status', () => {
  const r = Refusal.fromBody(409, JSON.stringify({ error: { code: 'equivocation', message: 'stored differs' } }));
  assert.equal(r.code?.code, 'equivocation');
  assert.equal(r.status, 409);
  const p = Refusal.fromBody(502, '<html>Bad Gateway</html>');
  assert.equal(p.codeText, 'unknown');
  assert.equal(p.code, null);
  assert.equal(p.status, 502);
});

test('an enrollment link reads back what it writes, pasted loosely, and malformed ones say what is wrong', async () => {
  const { publicKey } = await keyFromSeed(new Uint8Array(32).fill(3));
  const fp = await fingerprint(publicKey);
  const token = 'ab'.repeat(32);
  const good = `https://custody.example:8443/enroll#token=${token}&fp=${fp}`;
  const l = EnrollLink.parse(good);
  assert.equal(l.server, 'https://custody.example:8443');
  assert.equal(toHex(l.token), token);
  assert.equal(l.fingerprintText, fp);
  assert.equal(l.toString(), good);
  const loose = `  https://custody.example:8443/enroll#fp=${fp.replace(/-/g, '').toLowerCase()}&token=${token.toUpperCase()}\n`;
  assert.equal(EnrollLink.parse(loose).toString(), good);
  assert.equal(EnrollLink.parse(`http://127.0.0.1:9/custody/enroll#token=${token}&fp=${fp}`).server, 'http://127.0.0.1:9/custody');
  const [addr, frag] = good.split('#');
  const cases = [
    [addr, 'fragment'],
    [good.replace('https://', 'ftp://'), 'scheme'],
    [`https:///enroll#${frag}`, 'scheme'],
    [good.replace('/enroll#', '/join#'), 'path'],
    [good.replace('/enroll#', '/enroll?x=1#'), 'path'],
    [`${good}&token=00`, 'fragment'],
    [`${good}&x=1`, 'fragment'],
    [good.replace('token=', 'tok='), 'fragment'],
    [`${addr}#token=${token}`, 'fragment'],
    [good.replace('token=abab', 'token=zz'), 'token'],
    [good.replace('&fp=', '&fp=U'), 'fingerprint'],
  ];
  for (const [text, code] of cases) {
    assert.throws(() => EnrollLink.parse(text), (e) => e instanceof LinkError && e.code === code, text);
  }
});
