// Cuts MediaRecorder's output into segments that are each a complete file by themselves
// (docs/format.md, containers 3 `webm` and 4 `self-contained-mp4`): the stream's
// initialisation data as the recorder wrote it, then whole Clusters (WebM) or moof+mdat
// fragments (MP4) of that stream, in order.
//
// Cut rules (phone-interfaces.md, issue 14): a segment ends where a Cluster/fragment begins
// whose first video frame is a keyframe once `targetMs` have passed (cut 1); at the next
// Cluster/fragment start anyway once `maxMs` have passed (cut 2); and where the recorder's
// stream ends (cut 3 if the recording ends there). Time passed is measured from the
// segment's first video frame to the Cluster/fragment's first video frame (first frames of
// any track, in file order, for a recording without video; a Cluster without video frames
// counts from its first frame). `mediaStartUs` is the stream offset plus the time of the
// segment's first frame in file order, `mediaEndUs` the next segment's. Each segment
// carries its packet counts, video frame count and packet digest (format.md section 6),
// computed here as its frames go by, so nothing needs demuxing twice.

import { MediaError } from './bytes.js';
import { WebmParser } from './webm.js';
import { Mp4Parser } from './mp4.js';
import { PacketDigester, framingFromExtradata } from './digest.js';

/** @typedef {import('./webm.js').MediaEvent} MediaEvent */
/** @typedef {import('./webm-tracks.js').Track} Track */

/**
 * A header stream item (format.md section 4.1).
 * @typedef {{kind: number, codec: string, width: number, height: number,
 *   frameRateNum: number, frameRateDen: number, sampleRate: number, channels: number,
 *   timeBaseNum: number, timeBaseDen: number}} Stream
 */

/**
 * A completed segment, ready for `Recording.addSegment`. `packetDigest` is 32 bytes.
 * @typedef {{plaintext: Uint8Array, wallFirstUs: number, wallLastUs: number,
 *   mediaStartUs: number, mediaEndUs: number, streamPackets: number[], videoFrames: number,
 *   packetDigest: Uint8Array, cut: number}} Segment
 */

/**
 * (`unitFrames`: frames of the Cluster/fragment being read that are already in the digest.)
 * @typedef {{units: Uint8Array[], unitFrames: number, bytes: number, firstOffset: number, lastEnd: number,
 *   firstTimeUs: number | null, refTimeUs: number | null, latest: {timeUs: number, durationUs: number | null} | null,
 *   videoTimes: number[], videoFrames: number, digester: PacketDigester}} Open
 */

/**
 * The container code for a MediaRecorder mimeType: 3 for WebM (and Matroska: Chromium
 * asked for `video/webm;codecs=h264,opus` reports `video/x-matroska;codecs=avc1,opus`),
 * 4 for MP4.
 * @param {string} mimeType
 */
export function containerOf(mimeType) {
  const type = mimeType.split(';')[0].trim().toLowerCase();
  if (/^(video|audio)\/(webm|x-matroska|matroska)$/.test(type)) return 3;
  if (type === 'video/mp4' || type === 'audio/mp4') return 4;
  throw new MediaError('segmenter.mimetype', `custody cannot record ${JSON.stringify(mimeType)}: WebM or MP4 only`);
}

/** Cuts one recording's recorder streams into self-contained segments. */
export class Segmenter {
  /**
   * @param {{mimeType: string, targetMs?: number, maxMs?: number, maxSegmentBytes?: number}} options
   *   `maxSegmentBytes` bounds what one segment may hold while no Cluster/fragment start
   *   comes to cut at (64 MiB: some 300 s at a phone's 1.5 Mbit/s, far past `maxMs`).
   */
  constructor({ mimeType, targetMs = 2000, maxMs = 4000, maxSegmentBytes = 64 << 20 }) {
    this.code = containerOf(mimeType);
    this.targetUs = targetMs * 1000;
    this.maxUs = maxMs * 1000;
    this.maxSegmentBytes = maxSegmentBytes;
    /** @type {Track[] | null} the first stream's tracks: the header's streams */
    this.headerTracks = null;
    /** @type {number | null} the open stream's offset on the recording's timeline (null: not yet known) */
    this.offsetUs = 0;
    /** @type {number | null} the last segment's media end: where a stream without newStream() starts */
    this.lastEndUs = null;
    /** @type {MediaError | null} a refusal not yet thrown, or thrown again until newStream() */
    this.failed = null;
    this.resetStream();
  }

  /** @private */
  resetStream() {
    /** @type {WebmParser | Mp4Parser | null} */
    this.parser = null;
    /** @type {Track[] | null} the open stream's tracks, in its file's order */
    this.tracks = null;
    /** @type {Track[] | null} the same, in the canonical order (see onInit) */
    this.slotTracks = null;
    /** @type {number[]} */
    this.slot = [];
    /** @type {Uint8Array | null} */
    this.init = null;
    this.hasVideo = false;
    /** @type {{end: number, wallUs: number}[]} where each chunk pushed ends, and when it came */
    this.walls = [];
    this.received = 0;
    /** @type {Open | null} */
    this.seg = null;
    /** @type {{offset: number, firstTimeUs: number | null, decided: boolean, held: MediaEvent[]} | null} */
    this.unit = null;
    /** @type {Segment[]} */
    this.out = [];
  }

  /** 3 (webm) or 4 (self-contained-mp4). */
  get container() {
    return this.code;
  }

  /** @returns {Stream[] | null} the header's stream list once the first init is parsed */
  get streams() {
    if (!this.headerTracks) return null;
    return this.headerTracks.map((t) => ({
      kind: t.kind, codec: t.codec, width: t.width, height: t.height,
      frameRateNum: t.frameRateNum, frameRateDen: t.frameRateDen,
      sampleRate: t.sampleRate, channels: t.channels,
      timeBaseNum: t.timeBaseNum, timeBaseDen: t.timeBaseDen,
    }));
  }

  /**
   * Takes the recorder's next chunk (a `dataavailable` event's bytes).
   * @param {Uint8Array} chunk
   * @param {number} wallNowUs device clock when the chunk arrived
   * @returns {Segment[]} the segments it completed
   * @throws {MediaError} when the stream is refused (after returning, first, any segments
   *   the refused chunk completed: see `fail`)
   */
  push(chunk, wallNowUs) {
    if (this.failed) throw this.failed;
    if (!this.parser) {
      this.parser = this.code === 3 ? new WebmParser() : new Mp4Parser();
      if (this.offsetUs === null) this.offsetUs = this.lastEndUs ?? 0;
    }
    if (chunk.length > 0) {
      this.received += chunk.length;
      this.walls.push({ end: this.received, wallUs: wallNowUs });
    }
    try {
      this.handle(this.parser.push(chunk));
    } catch (e) {
      return this.fail(e, false);
    }
    if (this.parser.failed) return this.fail(this.parser.failed, false);
    return this.take();
  }

  /**
   * The recorder stopped: emits what is left of its stream. The last segment's cut is 3
   * (the recording ends here) unless `final` is false (the page restarts its recorder and
   * the recording goes on; the next stream begins at a keyframe, so the cut is 1). The next
   * `push()` starts a new stream, at the `newStream()` offset or else where this one ended.
   * @param {number} wallNowUs
   * @param {{final?: boolean}} [options]
   * @returns {Segment[]}
   */
  endStream(wallNowUs, { final = true } = {}) {
    if (this.failed) throw this.failed;
    if (!this.parser || this.received === 0) {
      // A recorder stopped before it gave a byte: nothing to end.
      this.resetStream();
      this.offsetUs = null;
      return [];
    }
    try {
      this.handle(this.parser.end());
    } catch (e) {
      return this.fail(e, true);
    }
    if (this.parser.failed) return this.fail(this.parser.failed, true);
    if (this.seg) this.emit(final ? 3 : 1, null, wallNowUs);
    const out = this.take();
    this.resetStream();
    this.offsetUs = null;
    return out;
  }

  /**
   * A new MediaRecorder starts at `offsetUs` on the recording's timeline (device monotonic
   * time since the recording began). Its tracks must be the first stream's (kind and
   * codec, in order).
   * @param {number} offsetUs
   */
  newStream(offsetUs) {
    if (this.parser && this.received > 0 && !this.failed) {
      throw new MediaError('segmenter.stream.open', 'newStream() while a recorder stream is open: call endStream() first');
    }
    this.resetStream();
    this.failed = null;
    this.offsetUs = offsetUs;
  }

  /**
   * A stream the parser refused. The segments it completed before the refusal are not
   * lost: `push()` returns them and the next call throws the error; `endStream()` throws
   * it with them in `error.segments`. The stream stays refused until `newStream()`.
   * @private
   * @param {unknown} e
   * @param {boolean} ending
   * @returns {Segment[]}
   */
  fail(e, ending) {
    const err = e instanceof MediaError ? e : new MediaError('segmenter.internal', String(e));
    this.failed = err;
    // At the stream's end, the open segment's whole Clusters/fragments are still a segment
    // when nothing of the refused one reached its digest: they are sealed, not lost.
    const s = this.seg;
    if (ending && s && s.units.length > 0 && s.unitFrames === 0) this.emit(3, null, null);
    const done = this.take();
    if (!ending && done.length > 0) return done;
    /** @type {MediaError & {segments?: Segment[]}} */ (err).segments = done;
    throw err;
  }

  /** @private */
  take() {
    const out = this.out;
    this.out = [];
    return out;
  }

  /**
   * @private
   * @param {MediaEvent[]} events
   */
  handle(events) {
    for (const e of events) {
      if (e.type === 'init') this.onInit(e.bytes, e.tracks);
      else if (e.type === 'start') {
        this.unit = { offset: e.offset, firstTimeUs: null, decided: false, held: [] };
        if (e.lead) {
          this.unit.firstTimeUs = e.lead.firstTimeUs;
          this.decide(e.lead.key, e.lead.timeUs);
        }
      }
      else if (e.type === 'frame') this.onFrame(e);
      else this.onEnd(e.offset, e.end, e.bytes);
    }
  }

  /**
   * @private
   * @param {Uint8Array} bytes
   * @param {Track[]} tracks
   */
  onInit(bytes, tracks) {
    // Streams are counted and digested in the canonical order (format.md 6.4: video, then
    // audio, then other; ties in track order), not the file's: Chromium's muxer lists a
    // track when its encoder first gives output, so a restarted recorder may list audio
    // and video the other way round.
    const order = canonicalOrder(tracks);
    const canonical = order.map((i) => tracks[i]);
    if (this.headerTracks) {
      const same = canonical.length === this.headerTracks.length &&
        canonical.every((t, i) => t.kind === this.headerTracks?.[i].kind && t.codec === this.headerTracks?.[i].codec);
      if (!same) {
        throw new MediaError('segmenter.tracks.changed', 'the restarted recorder\'s tracks differ from the recording\'s streams');
      }
    } else {
      this.headerTracks = canonical;
    }
    this.tracks = tracks;
    /** @type {number[]} the canonical position of each of this file's tracks */
    this.slot = [];
    order.forEach((fileIndex, position) => {
      this.slot[fileIndex] = position;
    });
    this.slotTracks = canonical;
    this.init = bytes;
    this.hasVideo = tracks.some((t) => t.kind === 1);
  }

  /**
   * @private
   * @param {Extract<MediaEvent, {type: 'frame'}>} f
   */
  onFrame(f) {
    const u = this.unit;
    if (!u) throw new MediaError('segmenter.internal', 'a frame outside a Cluster or fragment');
    if (u.firstTimeUs === null) u.firstTimeUs = f.timeUs;
    if (u.decided) {
      this.feed(f);
      return;
    }
    u.held.push(f);
    const isVideo = this.tracks?.[f.track].kind === 1;
    if (!this.hasVideo || isVideo) this.decide(f.key, f.timeUs);
  }

  /**
   * @private
   * @param {number} offset
   * @param {number} end
   * @param {Uint8Array} bytes
   */
  onEnd(offset, end, bytes) {
    if (this.unit && !this.unit.decided) this.decide(false, this.unit.firstTimeUs);
    this.unit = null;
    const s = this.seg;
    if (!s) return;
    if (s.units.length === 0) s.firstOffset = offset;
    s.units.push(bytes);
    s.bytes += bytes.length;
    s.unitFrames = 0;
    s.lastEnd = end;
    if (s.bytes > this.maxSegmentBytes) {
      throw new MediaError('segmenter.segment.too-large', `a segment passes ${this.maxSegmentBytes} bytes without a Cluster or fragment to cut at`, offset);
    }
  }

  /**
   * Where the open Cluster/fragment goes, once its first video frame (or its end) shows
   * whether it begins at a keyframe. Time is measured from the segment's first video
   * frame to this one's (first frames of any track without video), so that audio
   * interleaved a little ahead of a keyframe does not move the cut.
   * @private
   * @param {boolean} keyLed
   * @param {number | null} timeUs the time of the frame that decides (null: none)
   */
  decide(keyLed, timeUs) {
    const u = /** @type {NonNullable<typeof this.unit>} */ (this.unit);
    u.decided = true;
    const s = this.seg;
    const since = s ? (s.refTimeUs ?? s.firstTimeUs) : null;
    if (s && since !== null && timeUs !== null) {
      const elapsed = timeUs - since;
      if (keyLed && elapsed >= this.targetUs) this.emit(1, u.firstTimeUs, null);
      else if (elapsed >= this.maxUs) this.emit(2, u.firstTimeUs, null);
    }
    if (!this.seg) this.open(u.offset);
    for (const f of u.held) this.feed(/** @type {Extract<MediaEvent, {type: 'frame'}>} */ (f));
    u.held = [];
  }

  /**
   * @private
   * @param {number} offset
   */
  open(offset) {
    const tracks = this.slotTracks ?? [];
    this.seg = {
      units: [], unitFrames: 0, bytes: 0, firstOffset: offset, lastEnd: offset, firstTimeUs: null, refTimeUs: null, latest: null,
      videoTimes: [], videoFrames: 0,
      digester: new PacketDigester(tracks.map((t) => ({
        kind: t.kind, codec: t.codec, framing: framingFromExtradata(t.codec, t.extradata),
      }))),
    };
  }

  /**
   * @private
   * @param {Extract<MediaEvent, {type: 'frame'}>} f
   */
  feed(f) {
    const s = /** @type {Open} */ (this.seg);
    s.digester.push(this.slot[f.track], f.key, f.data);
    s.unitFrames += 1;
    if (s.firstTimeUs === null) s.firstTimeUs = f.timeUs;
    const isVideo = this.tracks?.[f.track].kind === 1;
    if (s.refTimeUs === null && (isVideo || !this.hasVideo)) s.refTimeUs = f.timeUs;
    if (isVideo) {
      s.videoFrames += 1;
      s.videoTimes.push(f.timeUs);
    }
    if (!s.latest || f.timeUs >= s.latest.timeUs) s.latest = { timeUs: f.timeUs, durationUs: f.durationUs };
  }

  /**
   * Completes the open segment.
   * @private
   * @param {number} cut
   * @param {number | null} nextTimeUs the next segment's first frame time, if it is known
   * @param {number | null} wallNowUs for a segment no chunk's bytes reached (none happens)
   */
  emit(cut, nextTimeUs, wallNowUs) {
    const s = /** @type {Open} */ (this.seg);
    this.seg = null;
    const init = /** @type {Uint8Array} */ (this.init);
    const plaintext = new Uint8Array(init.length + s.bytes);
    plaintext.set(init, 0);
    let at = init.length;
    for (const u of s.units) {
      plaintext.set(u, at);
      at += u.length;
    }
    const offset = this.offsetUs ?? 0;
    const start = s.firstTimeUs ?? 0;
    let end;
    if (nextTimeUs !== null) end = nextTimeUs;
    else if (s.latest) end = s.latest.timeUs + (s.latest.durationUs ?? meanSpacing(s.videoTimes));
    else end = start;
    const wallFirstUs = this.wallAt(s.firstOffset) ?? wallNowUs ?? 0;
    const wallLastUs = this.wallAt(Math.max(s.firstOffset, s.lastEnd - 1)) ?? wallFirstUs;
    this.walls = this.walls.filter((w) => w.end > s.lastEnd);
    const streamPackets = s.digester.packetCounts();
    const segment = {
      plaintext,
      wallFirstUs,
      wallLastUs,
      mediaStartUs: Math.round(offset + start),
      mediaEndUs: Math.round(offset + end),
      streamPackets,
      videoFrames: s.videoFrames,
      packetDigest: s.digester.finish(),
      cut,
    };
    this.lastEndUs = segment.mediaEndUs;
    this.out.push(segment);
  }

  /**
   * The wall time of the chunk that brought byte `offset` of this stream.
   * @private
   * @param {number} offset
   */
  wallAt(offset) {
    const w = this.walls.find((c) => c.end > offset);
    return w ? w.wallUs : null;
  }
}

/**
 * The canonical stream order of a file's tracks (format.md 6.4): indices into `tracks`,
 * video first, then audio, then other, each kind in the file's track order.
 * @param {Track[]} tracks
 * @returns {number[]}
 */
export function canonicalOrder(tracks) {
  const rank = (/** @type {number} */ kind) => (kind === 1 ? 0 : kind === 2 ? 1 : 2);
  return tracks.map((_, i) => i).sort((a, b) => rank(tracks[a].kind) - rank(tracks[b].kind) || a - b);
}

/**
 * The mean spacing of a segment's video frame times (0 with fewer than two).
 * @param {number[]} times
 */
function meanSpacing(times) {
  if (times.length < 2) return 0;
  let lo = Infinity, hi = -Infinity;
  for (const t of times) {
    lo = Math.min(lo, t);
    hi = Math.max(hi, t);
  }
  return (hi - lo) / (times.length - 1);
}
