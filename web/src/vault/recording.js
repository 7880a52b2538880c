// One recording in progress, for the device façade (device.js): segments are sealed,
// signed and saved one at a time, in order; then the end record.

import { signedRecordBytes } from '../format/record.js';
import { DeviceError } from './errors.js';
import { seal } from './sealer.js';

/** µs since the epoch now, as a Number. */
const wallNowUs = () => Date.now() * 1000;

/** The device clock of one recording: the wall clock at its start plus monotonic time since. */
export class Clock {
  constructor() {
    this.startUs = wallNowUs();
    this.startMono = performance.now();
  }

  nowUs() {
    return this.startUs + Math.round((performance.now() - this.startMono) * 1000);
  }
}

/** One recording in progress: segments are sealed, signed and saved one at a time, in order. */
export class Recording {
  /**
   * @param {import('../device.js').Device} device
   * @param {string} id
   * @param {import('../format/chain.js').ChainBuilder} builder
   * @param {import('../format/record.js').RecordingHeader} header
   * @param {Clock} clock
   */
  constructor(device, id, builder, header, clock) {
    this.device = device;
    /** The recording id, 32 hex digits. */
    this.id = id;
    this.builder = builder;
    this.header = header;
    this.clock = clock;
    this.lastWallUs = Number(header.startedAtUs);
    this.ended = false;
    /** @type {Promise<unknown>} */
    this.queue = Promise.resolve();
  }

  /**
   * @template T
   * @param {() => Promise<T>} f
   * @returns {Promise<T>}
   */
  serial(f) {
    const run = this.queue.then(f);
    this.queue = run.catch(() => {});
    return run;
  }

  /**
   * Seals a segment (typage, to every case recipient), signs its record and saves both in
   * one transaction; resolves once durable. The plaintext is not kept or written anywhere.
   * @param {{plaintext: Uint8Array, wallFirstUs: number, wallLastUs: number, mediaStartUs: number, mediaEndUs: number,
   *   streamPackets: number[], videoFrames: number, packetDigest: Uint8Array, cut: number}} s
   * @returns {Promise<{seq: number}>}
   */
  addSegment(s) {
    return this.serial(async () => {
      if (this.ended) throw new DeviceError('recording.ended', 'the recording has ended');
      if (s.streamPackets.length !== this.header.streams.length) {
        throw new DeviceError('segment.streams', `the segment counts ${s.streamPackets.length} streams; the recording has ${this.header.streams.length}`);
      }
      if (!(s.packetDigest instanceof Uint8Array) || s.packetDigest.length !== 32) throw new DeviceError('segment.digest', 'the packet digest must be 32 bytes');
      const snap = this.builder.snapshot();
      try {
        const sealed = await seal(s.plaintext, this.header.recipients);
        const signed = await this.builder.segment({
          wallFirstUs: s.wallFirstUs, wallLastUs: s.wallLastUs, mediaStartUs: s.mediaStartUs, mediaEndUs: s.mediaEndUs,
          streamPackets: s.streamPackets, videoFrames: s.videoFrames, plaintextLen: sealed.plaintextLen,
          plaintextSha256: sealed.plaintextSha256, ciphertextLen: sealed.ciphertextLen, ciphertextSha256: sealed.ciphertextSha256,
          packetDigest: s.packetDigest, cut: s.cut,
        });
        const seq = Number(this.builder.nextSeq - 1n);
        await this.device.outbox.addSegment(this.id, seq, signedRecordBytes(signed), sealed.ciphertext, s.mediaStartUs, s.mediaEndUs);
        this.lastWallUs = Math.max(this.lastWallUs, s.wallLastUs);
        this.device.saved();
        return { seq };
      } catch (err) {
        // Nothing of this segment was saved: the chain goes on from the last saved record.
        this.builder.restore(snap);
        throw this.device.fail(err);
      }
    });
  }

  /**
   * Signs and saves the end record (reason 1 stopped, 2 input ended, 3 error).
   * @param {{reason: number, message?: string}} p
   * @returns {Promise<{seq: number}>}
   */
  end({ reason, message }) {
    return this.serial(async () => {
      if (this.ended) throw new DeviceError('recording.ended', 'the recording has ended');
      const snap = this.builder.snapshot();
      try {
        const endedAtUs = Math.max(this.clock.nowUs(), this.lastWallUs);
        const signed = await this.builder.end(endedAtUs, reason, message ?? null);
        const seq = Number(this.builder.nextSeq - 1n);
        await this.device.outbox.addEnd(this.id, seq, signedRecordBytes(signed));
        this.ended = true;
        this.device.saved();
        return { seq };
      } catch (err) {
        this.builder.restore(snap);
        throw this.device.fail(err);
      }
    });
  }
}
