// The boxes of a fragmented MP4 that locate and describe samples (ISO/IEC 14496-12: moov,
// trak, tkhd, mdhd, hdlr, stsd, trex; moof, traf, tfhd, tfdt, trun), read from bodies
// already in memory. Codec names are FFmpeg's, as the recording header and the packet
// digest use them; the avcC/hvcC payload is FFmpeg's "extradata".

import { MediaError } from './bytes.js';

/**
 * @typedef {import('./webm-tracks.js').Track & {
 *   id: number, timescale: number,
 *   trex: {duration: number, size: number, flags: number},
 *   nextDts: number
 * }} Mp4Track
 */

/**
 * One sample of a fragment: where its bytes are, when it is presented, whether it is a
 * sync sample.
 * @typedef {{track: number, offset: number, size: number, timeUs: number, durationUs: number, key: boolean}} Sample
 */

/** @param {number} at */
const bad = (at, /** @type {string} */ what) => new MediaError('mp4.box.invalid', `${what} does not parse`, at);

/**
 * The child boxes of a body, as [type, body, absolute offset of the body].
 * @param {Uint8Array} body
 * @param {number} at absolute offset of `body`
 * @returns {[string, Uint8Array, number][]}
 */
export function boxes(body, at) {
  /** @type {[string, Uint8Array, number][]} */
  const out = [];
  const v = view(body);
  let p = 0;
  while (p + 8 <= body.length) {
    let size = v.getUint32(p);
    const type = String.fromCharCode(body[p + 4], body[p + 5], body[p + 6], body[p + 7]);
    let hl = 8;
    if (size === 1) {
      if (p + 16 > body.length) throw bad(at + p, type);
      size = Number(v.getBigUint64(p + 8));
      hl = 16;
    } else if (size === 0) size = body.length - p;
    if (size < hl || p + size > body.length) throw bad(at + p, `box ${type}`);
    out.push([type, body.subarray(p + hl, p + size), at + p + hl]);
    p += size;
  }
  return out;
}

/** @param {Uint8Array} b */
function view(b) {
  return new DataView(b.buffer, b.byteOffset, b.byteLength);
}

/**
 * @param {[string, Uint8Array, number][]} list
 * @param {string} type
 */
function find(list, type) {
  return list.find((b) => b[0] === type) ?? null;
}

/**
 * A path of nested boxes, or null.
 * @param {Uint8Array} body
 * @param {number} at
 * @param {string[]} path
 * @returns {[string, Uint8Array, number] | null}
 */
function dig(body, at, path) {
  /** @type {[string, Uint8Array, number] | null} */
  let cur = ['', body, at];
  for (const t of path) {
    cur = find(boxes(cur[1], cur[2]), t);
    if (!cur) return null;
  }
  return cur;
}

/**
 * The tracks of a moov body, in trak order.
 * @param {Uint8Array} body
 * @param {number} at
 * @returns {Mp4Track[]}
 */
export function parseMoov(body, at) {
  const top = boxes(body, at);
  /** @type {Map<number, {duration: number, size: number, flags: number}>} */
  const trex = new Map();
  const mvex = find(top, 'mvex');
  if (!mvex) throw new MediaError('mp4.not-fragmented', 'the moov has no mvex: not a fragmented MP4', at);
  for (const [type, b, o] of boxes(mvex[1], mvex[2])) {
    if (type !== 'trex') continue;
    if (b.length < 24) throw bad(o, 'trex');
    const v = view(b);
    trex.set(v.getUint32(4), { duration: v.getUint32(12), size: v.getUint32(16), flags: v.getUint32(20) });
  }
  /** @type {Mp4Track[]} */
  const tracks = [];
  for (const [type, trak, o] of top) {
    if (type !== 'trak') continue;
    const tkhd = dig(trak, o, ['tkhd']);
    const mdhd = dig(trak, o, ['mdia', 'mdhd']);
    const hdlr = dig(trak, o, ['mdia', 'hdlr']);
    const stsd = dig(trak, o, ['mdia', 'minf', 'stbl', 'stsd']);
    if (!tkhd || !mdhd || !hdlr || !stsd) throw bad(o, 'trak (tkhd, mdhd, hdlr, stsd)');
    const tv = view(tkhd[1]);
    if (tkhd[1].length < 24) throw bad(tkhd[2], 'tkhd');
    const id = tv.getUint32(tkhd[1][0] === 1 ? 20 : 12);
    const mv = view(mdhd[1]);
    if (mdhd[1].length < 24) throw bad(mdhd[2], 'mdhd');
    const timescale = mv.getUint32(mdhd[1][0] === 1 ? 20 : 12);
    if (timescale === 0) throw bad(mdhd[2], 'mdhd (timescale 0)');
    if (hdlr[1].length < 12) throw bad(hdlr[2], 'hdlr');
    const handler = String.fromCharCode(...hdlr[1].subarray(8, 12));
    const kind = handler === 'vide' ? 1 : handler === 'soun' ? 2 : 3;
    const entry = sampleEntry(stsd[1], stsd[2], kind);
    const defaults = trex.get(id);
    if (!defaults) throw new MediaError('mp4.trex.missing', `track ${id} has no trex defaults`, o);
    if (tracks.some((t) => t.id === id)) throw new MediaError('mp4.track.repeated', `track ${id} twice`, o);
    tracks.push({
      id, number: id, kind, timescale, trex: defaults, nextDts: 0,
      codec: entry.codec, extradata: entry.extradata,
      width: entry.width, height: entry.height, frameRateNum: 0, frameRateDen: 1,
      sampleRate: entry.sampleRate, channels: entry.channels,
      timeBaseNum: 1, timeBaseDen: timescale,
      defaultDurationUs: defaults.duration ? (defaults.duration * 1e6) / timescale : null,
    });
  }
  if (tracks.length === 0) throw new MediaError('mp4.tracks.empty', 'the moov holds no trak', at);
  return tracks;
}

/**
 * The codec of a track's first sample description.
 * @param {Uint8Array} stsd
 * @param {number} at
 * @param {number} kind
 */
function sampleEntry(stsd, at, kind) {
  if (stsd.length < 8) throw bad(at, 'stsd');
  const entries = boxes(stsd.subarray(8), at + 8);
  if (entries.length === 0) throw bad(at, 'stsd (no entry)');
  const [type, e, o] = entries[0];
  const v = view(e);
  let width = 0, height = 0, sampleRate = 0, channels = 0;
  let childAt;
  if (kind === 1) {
    if (e.length < 78) throw bad(o, type);
    width = v.getUint16(24);
    height = v.getUint16(26);
    childAt = 78;
  } else if (kind === 2) {
    if (e.length < 28) throw bad(o, type);
    const version = v.getUint16(8);
    channels = v.getUint16(16);
    sampleRate = v.getUint32(24) >>> 16;
    childAt = 28 + (version === 1 ? 16 : version === 2 ? 36 : 0);
  } else {
    throw new MediaError('mp4.codec.unsupported', `a track of handler type other than video or sound (${type})`, o);
  }
  const kids = childAt <= e.length ? boxes(e.subarray(childAt), o + childAt) : [];
  const payload = (/** @type {string} */ t) => find(kids, t)?.[1].slice() ?? null;
  /** @type {string | null} */
  let codec = null;
  /** @type {Uint8Array | null} */
  let extradata = null;
  switch (type) {
    case 'avc1': case 'avc3': codec = 'h264'; extradata = payload('avcC'); break;
    case 'hvc1': case 'hev1': codec = 'hevc'; extradata = payload('hvcC'); break;
    case 'vp09': codec = 'vp9'; break;
    case 'av01': codec = 'av1'; extradata = payload('av1C'); break;
    case 'Opus': codec = 'opus'; break;
    case 'fLaC': codec = 'flac'; break;
    case 'mp4a': codec = esdsCodec(payload('esds'), o); break;
    default: break;
  }
  if (!codec) throw new MediaError('mp4.codec.unsupported', `sample entry ${JSON.stringify(type)}, which custody does not record`, o);
  return { codec, extradata, width, height, sampleRate, channels };
}

/**
 * The codec an esds box's DecoderConfigDescriptor names (ISO/IEC 14496-1 descriptors).
 * @param {Uint8Array | null} esds
 * @param {number} at
 */
function esdsCodec(esds, at) {
  if (!esds || esds.length < 4) throw bad(at, 'esds');
  let p = 4;
  /** @returns {[number, number]} tag and body length */
  const descriptor = () => {
    const tag = esds[p++];
    let len = 0;
    for (let i = 0; i < 4; i++) {
      const b = esds[p++];
      len = (len << 7) | (b & 0x7f);
      if (!(b & 0x80)) break;
    }
    return [tag, len];
  };
  const [tag] = descriptor();
  if (tag !== 3) throw bad(at, 'esds (ES_Descriptor)');
  const flags = esds[p + 2];
  p += 3;
  if (flags & 0x80) p += 2;
  if (flags & 0x40) p += 1 + esds[p];
  if (flags & 0x20) p += 2;
  const [dtag] = descriptor();
  if (dtag !== 4 || p >= esds.length) throw bad(at, 'esds (DecoderConfigDescriptor)');
  const oti = esds[p];
  if (oti === 0x40 || oti === 0x66 || oti === 0x67 || oti === 0x68) return 'aac';
  if (oti === 0x69 || oti === 0x6b) return 'mp3';
  return null;
}

const TFHD_BASE = 0x1, TFHD_DESC = 0x2, TFHD_DUR = 0x8, TFHD_SIZE = 0x10, TFHD_FLAGS = 0x20;
const TFHD_MOOF = 0x20000;
const TRUN_OFFSET = 0x1, TRUN_FIRST = 0x4, TRUN_DUR = 0x100, TRUN_SIZE = 0x200, TRUN_FLAGS = 0x400, TRUN_CTO = 0x800;
/** sample_is_non_sync_sample and sample_depends_on = 1: FFmpeg's test for "not a keyframe". */
const NON_KEY = 0x10000 | 0x1000000;

/**
 * The samples a moof describes, in trun order per track. `moofAt` is the moof box's own
 * offset (the default base). Advances each track's `nextDts` for fragments without tfdt.
 * @param {Uint8Array} body
 * @param {number} at
 * @param {number} moofAt
 * @param {Mp4Track[]} tracks
 * @returns {Sample[]}
 */
export function parseMoof(body, at, moofAt, tracks) {
  /** @type {Sample[]} */
  const samples = [];
  let implicit = moofAt;
  for (const [type, traf, o] of boxes(body, at)) {
    if (type !== 'traf') continue;
    const kids = boxes(traf, o);
    const tfhd = find(kids, 'tfhd');
    if (!tfhd || tfhd[1].length < 8) throw bad(o, 'traf (tfhd)');
    const hv = view(tfhd[1]);
    const tf = hv.getUint32(0) & 0xffffff;
    const index = tracks.findIndex((t) => t.id === hv.getUint32(4));
    if (index < 0) throw new MediaError('mp4.track.unknown', `a traf for track ${hv.getUint32(4)}, which the moov does not list`, o);
    const t = tracks[index];
    let p = 8;
    const need = (/** @type {number} */ n) => {
      if (p + n > tfhd[1].length) throw bad(tfhd[2], 'tfhd');
    };
    let base = tf & TFHD_MOOF ? moofAt : implicit;
    if (tf & TFHD_BASE) { need(8); base = Number(hv.getBigUint64(p)); p += 8; }
    if (tf & TFHD_DESC) { need(4); p += 4; }
    let dDur = t.trex.duration, dSize = t.trex.size, dFlags = t.trex.flags;
    if (tf & TFHD_DUR) { need(4); dDur = hv.getUint32(p); p += 4; }
    if (tf & TFHD_SIZE) { need(4); dSize = hv.getUint32(p); p += 4; }
    if (tf & TFHD_FLAGS) { need(4); dFlags = hv.getUint32(p); p += 4; }
    const tfdt = find(kids, 'tfdt');
    let dts = t.nextDts;
    if (tfdt) {
      const dv = view(tfdt[1]);
      if (tfdt[1].length < (tfdt[1][0] === 1 ? 12 : 8)) throw bad(tfdt[2], 'tfdt');
      dts = tfdt[1][0] === 1 ? Number(dv.getBigUint64(4)) : dv.getUint32(4);
    }
    let next = base;
    let first = true;
    for (const [rt, trun, ro] of kids) {
      if (rt !== 'trun') continue;
      const rv = view(trun);
      if (trun.length < 8) throw bad(ro, 'trun');
      const version = trun[0];
      const rf = rv.getUint32(0) & 0xffffff;
      const count = rv.getUint32(4);
      let q = 8;
      let dataAt = first ? base : next;
      if (rf & TRUN_OFFSET) { dataAt = base + rv.getInt32(q); q += 4; }
      let firstFlags = -1;
      if (rf & TRUN_FIRST) { firstFlags = rv.getUint32(q); q += 4; }
      const per = [TRUN_DUR, TRUN_SIZE, TRUN_FLAGS, TRUN_CTO].filter((f) => rf & f).length * 4;
      if (q + count * per > trun.length) throw bad(ro, 'trun (sample table)');
      for (let i = 0; i < count; i++) {
        let dur = dDur, size = dSize, flags = dFlags, cto = 0;
        if (rf & TRUN_DUR) { dur = rv.getUint32(q); q += 4; }
        if (rf & TRUN_SIZE) { size = rv.getUint32(q); q += 4; }
        if (rf & TRUN_FLAGS) { flags = rv.getUint32(q); q += 4; }
        if (rf & TRUN_CTO) { cto = version === 0 ? rv.getUint32(q) : rv.getInt32(q); q += 4; }
        if (i === 0 && firstFlags >= 0) flags = firstFlags;
        samples.push({
          track: index, offset: dataAt, size,
          timeUs: Math.round(((dts + cto) * 1e6) / t.timescale),
          durationUs: (dur * 1e6) / t.timescale,
          key: t.kind !== 1 || (flags & NON_KEY) === 0,
        });
        dataAt += size;
        dts += dur;
      }
      next = dataAt;
      first = false;
    }
    implicit = next;
    t.nextDts = dts;
  }
  return samples;
}
