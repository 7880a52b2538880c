//! Live media ingest: the only crate of custody that links FFmpeg.
//!
//! `custody-capture` will turn whatever an observer has — a webcam through libavdevice, a
//! phone streaming over SRT, RTMP, RTSP or UDP MPEG-TS, or a file already recorded — into a
//! bounded stream of short, independently playable segments cut at keyframes. Each segment
//! is muxed into memory (never to disk), hashed as its bytes are written, given its packet
//! digest (see `docs/format.md`) and stamped with the device's wall-clock time, ready for
//! the vault to seal and sign.
