// Recording in the browser: MediaRecorder's chunks → web-media's Segmenter → sealed
// segments (web-core's Recording.addSegment), one at a time, in order, none dropped.
//
// Facts this is built on (Debian's Chromium 156, issue 14): with start(1000) a chunk is not
// a segment (boundaries fall inside WebM elements), so the Segmenter cuts at Cluster starts;
// keyframes come every ~5 s unless `videoKeyFrameIntervalDuration: 2000` is asked for (then
// every ~2.05 s); a page frozen in the background produces no chunks at all. So: the bitrate
// is changed only by restarting the MediaRecorder (a new self-contained stream, at a segment
// boundary), and a page going to the background ends the recording honestly instead of
// leaving a silent hole in it.
//
// Measured here (Debian's Chromium 156 headless, fake camera 1280x720 at 20 fps, 2 shared
// cores under load 6-8, 1 Dec 2026): MediaRecorder offers video/webm;codecs=vp8,opus,
// vp9,opus, h264,opus and plain video/mp4 (not video/mp4;codecs=avc1,mp4a), so the page
// picks VP8+Opus WebM. With videoKeyFrameIntervalDuration 2000 keyframes came every
// 2.00-2.16 s (segments mostly 2.0-2.2 s; one of 2.9 s when the encoder lagged). Within
// one recorder stream no frame is lost at a segment boundary by construction (segments are
// consecutive whole Clusters); the segments' media times join exactly (0 µs). Restarting
// the recorder (stop, then start) left 105 ms and 385 ms holes; starting the new one first
// (restart() below) left 27 ms, under one frame.

import { Segmenter } from '../media/segmenter.js';

/** MediaRecorder types in the order we prefer them (WebM first: Chromium and Firefox;
 * MP4 last: Safari). */
export const MIME_TYPES = [
  'video/webm;codecs=vp8,opus',
  'video/webm;codecs=vp9,opus',
  'video/webm;codecs=h264,opus',
  'video/mp4;codecs=avc1,mp4a',
  'video/mp4',
];

/** Video bitrates, highest first: ~720p at 1.2 Mbit/s, then halved twice for a crowded
 * street cell. Bounded so the picture stays usable as evidence. */
export const BITRATES = [1_200_000, 600_000, 300_000];

/**
 * Ends the Segmenter's stream, keeping the segments it completed before refusing the rest
 * of the stream (it hands them over on the error as `error.segments`), so that damaged
 * recorder output never costs the segments sealed-ready before it.
 * @param {Segmenter} segmenter
 * @param {number} wallUs
 * @param {boolean} final
 * @returns {{segments: any[], error: unknown}}
 */
export function endStreamKeeping(segmenter, wallUs, final) {
  try {
    return { segments: segmenter.endStream(wallUs, { final }), error: null };
  } catch (e) {
    const kept = /** @type {{segments?: unknown}} */ (e)?.segments;
    return { segments: Array.isArray(kept) ? kept : [], error: e };
  }
}

/** Software named in every header. */
export const SOFTWARE = 'custody capture page 0.1.0';

/** The header's `input` for a browser recording (no camera label: the observer's device
 * stays out of the record). */
export const inputFor = (/** @type {string} */ mimeType) => `browser MediaRecorder (${mimeType})`;

/**
 * The first type this browser can record.
 * @param {(type: string) => boolean} isTypeSupported
 * @returns {string | null}
 */
export function chooseMimeType(isTypeSupported) {
  for (const type of MIME_TYPES) {
    try {
      if (isTypeSupported(type)) return type;
    } catch {
      // An engine that throws on a type it does not know: not supported.
    }
  }
  return null;
}

/** The getUserMedia constraints: the rear camera at about 720p, and the microphone. */
export const CONSTRAINTS = {
  video: { facingMode: { ideal: 'environment' }, width: { ideal: 1280 }, height: { ideal: 720 }, frameRate: { ideal: 30 } },
  audio: { echoCancellation: true, noiseSuppression: true },
};

/**
 * @typedef {{level: number, since: number, calm: number}} AdaptState
 * `level` indexes BITRATES; `since` counts segments since the last change; `calm` counts
 * consecutive segments with the outbox (nearly) empty.
 */

/** Waiting records at which the uplink is behind (≈ 8 s of video at 2 s segments). */
export const BEHIND = 4;
/** Segments between two changes, so that one slow upload does not make the quality flap. */
export const SETTLE = 3;
/** Consecutive calm segments before the bitrate is raised again. */
export const CALM = 5;

/**
 * The bitrate decision at a segment boundary, from how many records wait in the outbox.
 * Lowers one step when the outbox is behind, raises one step after it stayed drained.
 * @param {AdaptState} s
 * @param {number} waiting outbox count
 * @returns {AdaptState}
 */
export function adapt(s, waiting) {
  const since = s.since + 1;
  const calm = waiting <= 1 ? s.calm + 1 : 0;
  if (since >= SETTLE && waiting >= BEHIND && s.level < BITRATES.length - 1) {
    return { level: s.level + 1, since: 0, calm: 0 };
  }
  if (since >= SETTLE && calm >= CALM && s.level > 0) {
    return { level: s.level - 1, since: 0, calm: 0 };
  }
  return { level: s.level, since, calm };
}

/**
 * @typedef {object} CaptureOptions
 * @property {{beginRecording: Function, status: Function}} device web-core's Device
 * @property {MediaStream} stream camera and microphone
 * @property {typeof MediaRecorder} [Recorder] MediaRecorder (a stand-in in tests)
 * @property {string} [mimeType] chosen by chooseMimeType if absent
 * @property {() => number} [monoMs] monotonic clock, ms (performance.now)
 * @property {() => number} [wallUs] device wall clock, µs
 * @property {number} [targetMs]
 * @property {number} [maxMs]
 * @property {number} [timesliceMs]
 */

/** Statistics the page exposes for tests and benchmarks (window.custodyStats). */
export function newStats() {
  return {
    mimeType: '',
    tapAtMs: 0,
    recorderStartedAtMs: 0,
    firstChunkAtMs: 0,
    /** @type {{seq: number, bytes: number, cut: number, mediaStartUs: number, mediaEndUs: number, leftRecorderAtMs: number, sealedAtMs: number, recordingId: string}[]} */
    segments: [],
    /** @type {{atMs: number, bitsPerSecond: number, offsetUs: number}[]} */
    streams: [],
    chunks: 0,
    bitsPerSecond: 0,
  };
}

/** One recording from a camera stream, sealed segment by segment. Dispatches 'change'. */
export class Capture extends EventTarget {
  /** @param {CaptureOptions} options */
  constructor(options) {
    super();
    this.device = options.device;
    this.stream = options.stream;
    this.Recorder = options.Recorder ?? globalThis.MediaRecorder;
    this.mimeType = options.mimeType ?? chooseMimeType((t) => this.Recorder.isTypeSupported(t));
    if (!this.mimeType) throw Object.assign(new Error('this browser cannot record WebM or MP4'), { code: 'recorder.unsupported' });
    this.monoMs = options.monoMs ?? (() => performance.now());
    this.wallUs = options.wallUs ?? (() => Date.now() * 1000);
    this.targetMs = options.targetMs ?? 2000;
    this.maxMs = options.maxMs ?? 4000;
    this.timesliceMs = options.timesliceMs ?? 1000;
    this.segmenter = new Segmenter({ mimeType: this.mimeType, targetMs: this.targetMs, maxMs: this.maxMs });
    /** @type {any} the Recording, once the header is sealed */
    this.recording = null;
    /** @type {MediaRecorder | null} */
    this.recorder = null;
    /** @type {Promise<void>} every chunk and boundary, in order */
    this.queue = Promise.resolve();
    /** @type {AdaptState} */
    this.adaptState = { level: 0, since: 0, calm: 0 };
    this.startedAtMs = 0;
    this.sealed = 0;
    this.state = /** @type {'idle' | 'recording' | 'stopping' | 'ended'} */ ('idle');
    /** @type {any} the first error that stopped the recording */
    this.error = null;
    /** @type {Promise<void> | null} a restart in progress */
    this.restarting = null;
    /** @type {Promise<void> | null} the stop in progress */
    this.stopping = null;
    this.stats = newStats();
    this.stats.mimeType = this.mimeType;
  }

  /** Starts recording (the header is sealed when the recorder's first data arrives). */
  start() {
    if (this.state !== 'idle') return;
    this.state = 'recording';
    this.startedAtMs = this.monoMs();
    this.startRecorder(0);
    this.changed();
  }

  /** Milliseconds since start. */
  get elapsedMs() {
    return this.state === 'idle' ? 0 : this.monoMs() - this.startedAtMs;
  }

  /**
   * @private
   * @param {number} offsetUs where this recorder's stream starts on the recording's timeline
   * @param {Promise<void> | null} [gate] its chunks wait for this (the previous stream's end)
   */
  startRecorder(offsetUs, gate = null) {
    const bitsPerSecond = BITRATES[this.adaptState.level];
    /** @type {MediaRecorderOptions & {videoKeyFrameIntervalDuration?: number}} */
    const opts = {
      mimeType: this.mimeType,
      videoBitsPerSecond: bitsPerSecond,
      audioBitsPerSecond: 64_000,
      // Chromium: a keyframe every ~2 s instead of ~5 s, so segments can be ~2 s long.
      videoKeyFrameIntervalDuration: 2000,
    };
    const rec = new this.Recorder(this.stream, opts);
    this.recorder = rec;
    rec.addEventListener('dataavailable', (e) => {
      const wall = this.wallUs();
      const at = this.monoMs();
      const blob = /** @type {BlobEvent} */ (e).data;
      const job = () => this.onChunk(blob, wall, at);
      // `.then` callbacks of one promise run in the order they were added: chunks stay in order.
      if (gate) void gate.then(() => this.enqueue(job));
      else this.enqueue(job);
    });
    rec.addEventListener('start', () => {
      if (!this.stats.recorderStartedAtMs) this.stats.recorderStartedAtMs = this.monoMs();
    });
    rec.addEventListener('error', (e) => this.fail(/** @type {any} */ (e).error ?? new Error('the recorder failed')));
    this.stats.streams.push({ atMs: this.monoMs(), bitsPerSecond, offsetUs });
    this.stats.bitsPerSecond = bitsPerSecond;
    rec.start(this.timesliceMs);
  }

  /**
   * Runs `job` after everything queued before it; a failure stops the recording but the
   * queue goes on (so that what is already sealed stays, and the end record is written).
   * @private
   * @param {() => Promise<void> | void} job
   */
  enqueue(job) {
    this.queue = this.queue.then(job).catch((e) => this.fail(e));
    return this.queue;
  }

  /**
   * @private
   * @param {Blob} blob
   * @param {number} wall
   * @param {number} at
   */
  async onChunk(blob, wall, at) {
    if (this.error) return;
    this.stats.chunks++;
    if (!this.stats.firstChunkAtMs) this.stats.firstChunkAtMs = at;
    const bytes = new Uint8Array(await blob.arrayBuffer());
    const segments = this.segmenter.push(bytes, wall);
    await this.begin();
    for (const seg of segments) await this.seal(seg, at);
  }

  /** @private Seals the header once the recorder's tracks are known. */
  async begin() {
    if (this.recording || !this.segmenter.streams) return;
    this.recording = await this.device.beginRecording({
      container: this.segmenter.container,
      streams: this.segmenter.streams,
      input: inputFor(this.mimeType),
      software: SOFTWARE,
      targetSegmentMs: this.targetMs,
      maxSegmentMs: this.maxMs,
      origin: 'live',
    });
    this.changed();
  }

  /**
   * @private
   * @param {import('../media/segmenter.js').Segment} seg
   * @param {number} leftAt when the chunk that completed it left the recorder
   */
  async seal(seg, leftAt) {
    if (!this.recording) throw new Error('a segment came before the recorder described its tracks');
    const { seq } = await this.recording.addSegment(seg);
    this.sealed++;
    this.stats.segments.push({
      seq, bytes: seg.plaintext.length, cut: seg.cut, mediaStartUs: seg.mediaStartUs,
      mediaEndUs: seg.mediaEndUs, leftRecorderAtMs: leftAt, sealedAtMs: this.monoMs(),
      recordingId: this.recording.id,
    });
    this.changed();
    if (this.state === 'recording') this.considerBitrate();
  }

  /** @private At a segment boundary: follow the uplink. */
  considerBitrate() {
    if (this.restarting) return;
    let waiting = 0;
    try {
      waiting = this.device.status()?.outbox?.count ?? 0;
    } catch {
      return;
    }
    const next = adapt(this.adaptState, waiting);
    const change = next.level !== this.adaptState.level;
    this.adaptState = next;
    if (change) void this.restart();
  }

  /**
   * Restarts the MediaRecorder at the new bitrate. The new recorder starts BEFORE the old
   * one stops, so that no camera frame falls between the two (stopping first lost 100-400
   * ms of video per restart in Chromium here); its chunks wait until the old stream's last
   * segment is sealed (not final) and the Segmenter is told where the new stream starts.
   * The two streams overlap by the old recorder's stop latency (tens of ms), within the
   * verifier's continuity tolerance.
   * @private
   */
  restart() {
    const old = this.recorder;
    if (!old || this.state !== 'recording') return Promise.resolve();
    this.restarting = (async () => {
      /** @type {() => void} */
      let open = () => {};
      const gate = new Promise((resolve) => {
        open = () => resolve(undefined);
      });
      const offsetUs = Math.round((this.monoMs() - this.startedAtMs) * 1000);
      try {
        this.startRecorder(offsetUs, gate);
        await stopRecorder(old);
        const wall = this.wallUs();
        const at = this.monoMs();
        // Queued behind the old recorder's last chunk and before the new one's first.
        this.enqueue(async () => {
          const { segments, error } = endStreamKeeping(this.segmenter, wall, false);
          for (const seg of segments) await this.seal(seg, at);
          this.segmenter.newStream(offsetUs);
          if (error) throw error;
        });
      } finally {
        open();
        await gate;
        this.restarting = null;
        this.changed();
      }
    })();
    return this.restarting;
  }

  /**
   * Stops: flushes the recorder, seals what there is, writes the end record.
   * @param {{reason?: number, message?: string}} [how] reason 1 stopped, 2 input ended, 3 error
   */
  stop(how = {}) {
    if (this.stopping) return this.stopping;
    if (this.state !== 'recording') return this.queue;
    this.stopping = this.finish(how);
    return this.stopping;
  }

  /**
   * @private
   * @param {{reason?: number, message?: string}} how
   */
  async finish(how) {
    this.state = 'stopping';
    this.changed();
    // A restart in progress first hands over to its new recorder (whose chunks it holds).
    if (this.restarting) await this.restarting;
    const rec = this.recorder;
    if (rec) await stopRecorder(rec);
    const wall = this.wallUs();
    const at = this.monoMs();
    await this.enqueue(async () => {
      if (!this.error) {
        try {
          const { segments, error } = endStreamKeeping(this.segmenter, wall, true);
          await this.begin();
          for (const seg of segments) await this.seal(seg, at);
          if (error) throw error;
        } catch (e) {
          // The last segments could not be sealed (a full quota): the end record still
          // says why the recording ends here.
          this.error = e;
          this.changed();
        }
      }
      if (this.recording) {
        const reason = this.error ? 3 : (how.reason ?? 1);
        const message = this.error ? String(this.error.message ?? this.error) : how.message;
        await this.recording.end(message ? { reason, message } : { reason });
      }
    });
    this.state = 'ended';
    this.changed();
  }

  /**
   * @private
   * @param {any} e
   */
  fail(e) {
    if (!this.error) this.error = e;
    this.changed();
    if (this.state === 'recording') void this.stop({ reason: 3 });
  }

  /** @private */
  changed() {
    this.dispatchEvent(new Event('change'));
  }
}

/**
 * Asks the recorder for what it holds and stops it; resolves once its last chunk and its
 * 'stop' event were delivered (MediaRecorder fires dataavailable before stop).
 * @param {MediaRecorder} rec
 * @returns {Promise<void>}
 */
export function stopRecorder(rec) {
  if (rec.state === 'inactive') return Promise.resolve();
  return new Promise((resolve) => {
    rec.addEventListener('stop', () => resolve(), { once: true });
    try {
      rec.requestData();
    } catch {
      // Already stopping: the stop event still comes.
    }
    rec.stop();
  });
}

/** Keeps the screen on while recording (where the browser has the Wake Lock API). */
export class WakeLock {
  constructor() {
    /** @type {any} */
    this.sentinel = null;
    this.wanted = false;
  }

  /** Whether this browser can keep the screen on. */
  static get supported() {
    return typeof navigator !== 'undefined' && 'wakeLock' in navigator;
  }

  async acquire() {
    this.wanted = true;
    if (!WakeLock.supported || this.sentinel || document.visibilityState !== 'visible') return;
    try {
      this.sentinel = await /** @type {any} */ (navigator).wakeLock.request('screen');
      this.sentinel.addEventListener('release', () => {
        this.sentinel = null;
      });
    } catch {
      // Refused (battery saver, or not visible): the page says to keep the screen on.
      this.sentinel = null;
    }
  }

  /** Called when the page becomes visible again: the browser released the lock. */
  async reacquire() {
    if (this.wanted) await this.acquire();
  }

  async release() {
    this.wanted = false;
    const s = this.sentinel;
    this.sentinel = null;
    if (s) await s.release().catch(() => {});
  }
}
