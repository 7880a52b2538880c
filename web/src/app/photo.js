// A still photo of the paperwork agents show (a "warrant"), sealed as a recording of its
// own: container 5, one segment holding one JPEG file (docs/format.md 6.4).

import { photoSegment } from '../media/photo.js';
import { SOFTWARE } from './recorder.js';

/**
 * Takes a JPEG from the camera. ImageCapture.takePhoto (full sensor resolution) where the
 * browser has it and the camera is not being recorded; while recording, a frame of the
 * preview instead, because takePhoto may reconfigure the camera and break the recording.
 * @param {MediaStreamTrack} track the video track
 * @param {HTMLVideoElement} video the preview playing that track
 * @param {{recording: boolean}} how
 * @returns {Promise<Uint8Array>}
 */
export async function takeJpeg(track, video, { recording }) {
  const IC = /** @type {any} */ (globalThis).ImageCapture;
  if (IC && !recording) {
    try {
      const blob = await new IC(track).takePhoto();
      if (blob.type === 'image/jpeg') return new Uint8Array(await blob.arrayBuffer());
      return await toJpeg(await createImageBitmap(blob));
    } catch {
      // Some cameras refuse takePhoto: fall back to a frame of the preview.
    }
  }
  if (!video.videoWidth) throw new Error('the camera has no picture yet');
  return toJpeg(video);
}

/**
 * @param {HTMLVideoElement | ImageBitmap} source
 * @returns {Promise<Uint8Array>}
 */
async function toJpeg(source) {
  const w = 'videoWidth' in source ? source.videoWidth : source.width;
  const h = 'videoHeight' in source ? source.videoHeight : source.height;
  const canvas = document.createElement('canvas');
  canvas.width = w;
  canvas.height = h;
  const ctx = canvas.getContext('2d');
  if (!ctx) throw new Error('no canvas to draw the photo on');
  ctx.drawImage(source, 0, 0, w, h);
  const blob = await new Promise((resolve, reject) =>
    canvas.toBlob((b) => (b ? resolve(b) : reject(new Error('the photo could not be encoded'))), 'image/jpeg', 0.92));
  return new Uint8Array(await /** @type {Blob} */ (blob).arrayBuffer());
}

/**
 * Seals a JPEG as its own recording: header, the one segment, end record (reason 1).
 * @param {{beginRecording: Function}} device
 * @param {Uint8Array} jpeg
 * @param {number} wallUs when it was taken (device clock)
 * @returns {Promise<{id: string, seq: number}>}
 */
export async function sealPhoto(device, jpeg, wallUs) {
  // photoSegment reads the size from the JPEG itself (and refuses one without a frame).
  const { streams, segment } = await photoSegment(jpeg, { wallUs });
  const recording = await device.beginRecording({
    container: 5,
    streams,
    input: 'browser camera still photo (JPEG)',
    software: SOFTWARE,
    targetSegmentMs: 0,
    maxSegmentMs: 0,
    origin: 'live',
  });
  const { seq } = await recording.addSegment(segment);
  await recording.end({ reason: 1 });
  return { id: recording.id, seq };
}
