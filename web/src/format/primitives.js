// Every domain-separation string of docs/format.md section 2, mirroring
// format/src/primitives.rs. Each ends in a NUL byte so no string is a prefix of another.

import { utf8 } from './bytes.js';

export const DOMAIN_RECORD_HASH = utf8('custody/v1/record-hash\0');
export const DOMAIN_RECORD_SIGNATURE = utf8('custody/v1/record-signature\0');
export const DOMAIN_RECEIPT_SIGNATURE = utf8('custody/v1/receipt-signature\0');
export const DOMAIN_TREE_HEAD_SIGNATURE = utf8('custody/v1/tree-head-signature\0');
export const DOMAIN_DEVICE_CERT_SIGNATURE = utf8('custody/v1/device-certificate-signature\0');
export const DOMAIN_PACKET_DIGEST = utf8('custody/v1/packet-digest\0');
export const DOMAIN_PACKET_DIGEST_STREAM = utf8('custody/v1/packet-digest/stream\0');
export const DOMAIN_REQUEST_SIGNATURE = utf8('custody/v1/request-signature\0');
export const DOMAIN_ENROLLMENT_SIGNATURE = utf8('custody/v1/enrollment-signature\0');
export const DOMAIN_CASE_RECIPIENTS_SIGNATURE = utf8('custody/v1/case-recipients-signature\0');
export const DOMAIN_KEY_FINGERPRINT = utf8('custody/v1/key-fingerprint\0');
