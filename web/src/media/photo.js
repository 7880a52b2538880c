// A still photo as a recording of its own (docs/format.md, container 5 `photo`): one
// segment whose plaintext is the JPEG file, one video stream (codec `mjpeg`, frame rate
// 0/1, time base 1/1), the whole file as one packet of an "other codec" stream for the
// packet digest (format.md section 6: one unit, key 1), media times 0, cut 3.

import { MediaError } from './bytes.js';
import { PacketDigester } from './digest.js';

/**
 * The size a JPEG's first frame header (SOF0..SOF15, not DHT/JPG/DAC) declares, or null.
 * @param {Uint8Array} d
 * @returns {{width: number, height: number} | null}
 */
export function jpegSize(d) {
  let p = 2;
  while (p + 4 <= d.length) {
    if (d[p] !== 0xff) return null;
    const marker = d[p + 1];
    if (marker === 0xff) {
      p += 1;
      continue;
    }
    const len = (d[p + 2] << 8) | d[p + 3];
    const isSof = marker >= 0xc0 && marker <= 0xcf && marker !== 0xc4 && marker !== 0xc8 && marker !== 0xcc;
    if (isSof) {
      if (p + 9 > d.length) return null;
      return { height: (d[p + 5] << 8) | d[p + 6], width: (d[p + 7] << 8) | d[p + 8] };
    }
    if (marker === 0xda || len < 2) return null;
    p += 2 + len;
  }
  return null;
}

/**
 * The header streams and the one segment of a photo recording.
 * @param {Uint8Array} jpegBytes the JPEG file as taken
 * @param {{width?: number, height?: number, wallUs: number}} options width and height
 *   default to the JPEG's own; when given they must agree with it
 * @returns {Promise<{streams: import('./segmenter.js').Stream[], segment: import('./segmenter.js').Segment}>}
 */
export async function photoSegment(jpegBytes, { width, height, wallUs }) {
  const d = jpegBytes;
  if (d.length < 4 || d[0] !== 0xff || d[1] !== 0xd8 || d[2] !== 0xff) {
    throw new MediaError('photo.not-jpeg', 'the photo is not a JPEG file (no SOI marker)');
  }
  const size = jpegSize(d);
  if (!size) throw new MediaError('photo.no-size', 'the JPEG declares no frame size (no SOF marker before its scan)');
  if ((width !== undefined && width !== size.width) || (height !== undefined && height !== size.height)) {
    throw new MediaError('photo.size.mismatch', `the JPEG is ${size.width}x${size.height}, not ${width}x${height}`);
  }
  const stream = {
    kind: 1, codec: 'mjpeg', width: size.width, height: size.height,
    frameRateNum: 0, frameRateDen: 1, sampleRate: 0, channels: 0, timeBaseNum: 1, timeBaseDen: 1,
  };
  const digester = new PacketDigester([{ kind: 1, codec: 'mjpeg', framing: 'whole' }]);
  digester.push(0, true, d);
  return {
    streams: [stream],
    segment: {
      plaintext: d,
      wallFirstUs: wallUs,
      wallLastUs: wallUs,
      mediaStartUs: 0,
      mediaEndUs: 0,
      streamPackets: [1],
      videoFrames: 1,
      packetDigest: digester.finish(),
      cut: 3,
    },
  };
}
