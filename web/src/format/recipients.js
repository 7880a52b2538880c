// Case recipients (docs/api.md, "Case recipients"), mirroring format/src/recipients.rs: the
// server's signed list of the age recipients every segment must be sealed to. A device
// checks the signature with the server key it pinned, so a list altered on the way is
// refused instead of silently sealing evidence to somebody else.

import { FieldReader, FieldWriter, f } from './encoding.js';
import { DOMAIN_CASE_RECIPIENTS_SIGNATURE } from './primitives.js';
import { KIND } from './record.js';
import { readKey } from './signed.js';

const SERVER_KEY = f(1, 'server_key');
const RECIPIENTS = f(2, 'recipients');
const R_VALUE = f(1, 'recipient');

/** @typedef {{serverKey: Uint8Array, recipients: string[]}} CaseRecipients */

/** @type {import('./signed.js').ObjectDef<CaseRecipients>} */
export const CASE_RECIPIENTS = {
  kind: KIND.CASE_RECIPIENTS,
  name: 'case recipients',
  domain: DOMAIN_CASE_RECIPIENTS_SIGNATURE,
  write(w, v) {
    w.raw(SERVER_KEY, v.serverKey).list(RECIPIENTS, v.recipients.map((r) => new FieldWriter().str(R_VALUE, r).bytes()));
  },
  read(r) {
    const serverKey = readKey(r, SERVER_KEY);
    const recipients = r.list(RECIPIENTS).map((item) => {
      const ir = new FieldReader('recipient', item);
      const v = ir.str(R_VALUE);
      ir.finish();
      return v;
    });
    return { serverKey, recipients };
  },
};
