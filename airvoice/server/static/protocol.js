// The airvoice wire format, by hand: Pipecat's protobuf `Frame` with RTVI 2.x JSON inside
// `message` frames. A mirror of airvoice/protocol.py (keep the two in step).
//
//   Frame { oneof frame { TextFrame text = 1; AudioRawFrame audio = 2;
//           TranscriptionFrame transcription = 3; MessageFrame message = 4;
//           InterruptionFrame interruption = 5; } }
//   TextFrame { uint64 id = 1; string name = 2; string text = 3; }
//   AudioRawFrame { uint64 id = 1; string name = 2; bytes audio = 3;
//                   uint32 sample_rate = 4; uint32 num_channels = 5; }
//   TranscriptionFrame { ...; string text = 3; string user_id = 4; string timestamp = 5; }
//   MessageFrame { string data = 1; }  // JSON

export const RTVI_LABEL = "rtvi-ai";
export const RTVI_VERSION = "2.2.0";
export const INPUT_SAMPLE_RATE = 16000; // what the server hears: mono PCM16
export const OUTPUT_SAMPLE_RATE = 24000; // what the server speaks: mono PCM16

const TEXT = 1;
const AUDIO = 2;
const TRANSCRIPTION = 3;
const MESSAGE = 4;
const INTERRUPTION = 5;

export class ProtocolError extends Error {
  constructor(message) {
    super(message);
    this.name = "ProtocolError";
  }
}

const utf8Encoder = new TextEncoder();
const utf8Decoder = new TextDecoder("utf-8", { fatal: true });

// -- protobuf primitives -------------------------------------------------------------------
function varint(value) {
  // Non-negative integers up to 2**53 (arithmetic, not 32-bit bit operations).
  const out = [];
  let v = value;
  while (v >= 0x80) {
    out.push((v % 0x80) | 0x80);
    v = Math.floor(v / 0x80);
  }
  out.push(v);
  return out;
}

function concat(parts) {
  let length = 0;
  for (const p of parts) length += p.length;
  const out = new Uint8Array(length);
  let pos = 0;
  for (const p of parts) {
    out.set(p, pos);
    pos += p.length;
  }
  return out;
}

function bytesField(number, bytes) {
  return concat([Uint8Array.from(varint((number << 3) | 2)), Uint8Array.from(varint(bytes.length)), bytes]);
}

function intField(number, value) {
  return value ? Uint8Array.from([...varint(number << 3), ...varint(value)]) : new Uint8Array(0);
}

function readVarint(data, pos) {
  let result = 0;
  let scale = 1;
  for (let i = 0; i < 10; i++) {
    if (pos >= data.length) throw new ProtocolError("truncated varint");
    const byte = data[pos++];
    result += (byte & 0x7f) * scale; // beyond 2**53 precision is lost: only ids get that big
    if (!(byte & 0x80)) return [result, pos];
    scale *= 0x80;
  }
  throw new ProtocolError("varint too long");
}

// One message level: field number -> last value (a Uint8Array view or a number).
function fields(data) {
  const found = new Map();
  let pos = 0;
  while (pos < data.length) {
    let key;
    [key, pos] = readVarint(data, pos);
    const number = Math.floor(key / 8);
    const wireType = key % 8;
    if (number === 0) throw new ProtocolError("field number 0");
    if (wireType === 0) {
      let value;
      [value, pos] = readVarint(data, pos);
      found.set(number, value);
    } else if (wireType === 2) {
      let length;
      [length, pos] = readVarint(data, pos);
      if (pos + length > data.length) throw new ProtocolError("truncated length-delimited field");
      found.set(number, data.subarray(pos, pos + length));
      pos += length;
    } else if (wireType === 1) {
      pos += 8;
    } else if (wireType === 5) {
      pos += 4;
    } else {
      throw new ProtocolError(`unsupported wire type ${wireType}`);
    }
    if (pos > data.length) throw new ProtocolError("truncated fixed-width field");
  }
  return found;
}

function text(found, number) {
  const value = found.get(number) ?? new Uint8Array(0);
  if (!(value instanceof Uint8Array)) throw new ProtocolError(`field ${number} should be a string`);
  try {
    return utf8Decoder.decode(value);
  } catch {
    throw new ProtocolError(`field ${number} is not UTF-8`);
  }
}

// -- Frame encode / decode -----------------------------------------------------------------
/** An `audio` frame of PCM16 little-endian samples (an Int16Array or its bytes). */
export function encodeAudio(pcm, sampleRate = INPUT_SAMPLE_RATE, numChannels = 1) {
  const bytes = pcm instanceof Uint8Array ? pcm : new Uint8Array(pcm.buffer, pcm.byteOffset, pcm.byteLength);
  const body = concat([bytesField(3, bytes), intField(4, sampleRate), intField(5, numChannels)]);
  return bytesField(AUDIO, body);
}

/** A `message` frame holding `data` as JSON. */
export function encodeMessage(data) {
  return bytesField(MESSAGE, bytesField(1, utf8Encoder.encode(JSON.stringify(data))));
}

export function encodeText(value) {
  return bytesField(TEXT, bytesField(3, utf8Encoder.encode(value)));
}

export function encodeInterruption() {
  return bytesField(INTERRUPTION, new Uint8Array(0));
}

/**
 * Parse a protobuf `Frame` (ArrayBuffer or Uint8Array); throws ProtocolError on anything else.
 * Returns {kind: "audio", audio: Uint8Array, sampleRate, numChannels} | {kind: "message", data}
 * | {kind: "text", text} | {kind: "transcription", text, userId, timestamp}
 * | {kind: "interruption"}.
 */
export function decode(buffer) {
  const data = buffer instanceof Uint8Array ? buffer : new Uint8Array(buffer);
  const outer = fields(data);
  const kinds = [TEXT, AUDIO, TRANSCRIPTION, MESSAGE, INTERRUPTION].filter((n) => outer.has(n));
  if (kinds.length !== 1) {
    throw new ProtocolError("a Frame must hold exactly one of text/audio/transcription/message/…");
  }
  const kind = kinds[0];
  const body = outer.get(kind);
  if (!(body instanceof Uint8Array)) throw new ProtocolError("frame body is not a message");
  const inner = fields(body);
  if (kind === AUDIO) {
    const audio = inner.get(3) ?? new Uint8Array(0);
    const sampleRate = inner.get(4) ?? 0;
    const numChannels = inner.get(5) ?? 0;
    if (!(audio instanceof Uint8Array) || typeof sampleRate !== "number" || typeof numChannels !== "number") {
      throw new ProtocolError("malformed audio frame");
    }
    return { kind: "audio", audio, sampleRate, numChannels };
  }
  if (kind === MESSAGE) {
    let parsed;
    try {
      parsed = JSON.parse(text(inner, 1) || "null");
    } catch (err) {
      if (err instanceof ProtocolError) throw err;
      throw new ProtocolError("message frame is not JSON");
    }
    if (parsed === null || typeof parsed !== "object" || Array.isArray(parsed)) {
      throw new ProtocolError("message frame JSON must be an object");
    }
    return { kind: "message", data: parsed };
  }
  if (kind === TEXT) return { kind: "text", text: text(inner, 3) };
  if (kind === TRANSCRIPTION) {
    return { kind: "transcription", text: text(inner, 3), userId: text(inner, 4), timestamp: text(inner, 5) };
  }
  return { kind: "interruption" };
}

// -- RTVI ----------------------------------------------------------------------------------
function messageId() {
  if (globalThis.crypto?.randomUUID) return crypto.randomUUID().replaceAll("-", "");
  return `${Date.now().toString(16)}${Math.random().toString(16).slice(2)}`;
}

/** An RTVI client message (every client message needs an id). */
export function rtvi(type, data, id = messageId()) {
  const message = { label: RTVI_LABEL, type, id };
  if (data !== undefined) message.data = data;
  return message;
}

/** Declared in client-ready: this page decodes the protobuf `interruption` frame (the server
 * sends it only to clients that say so). */
export const INTERRUPTION_FRAME_FEATURE = "interruption-frame";

/** The first message a client sends; the server answers `bot-ready`. */
export function clientReady(library = "airvoice-web") {
  const about = { library, features: [INTERRUPTION_FRAME_FEATURE] };
  return rtvi("client-ready", { version: RTVI_VERSION, about });
}

/** The RTVI `type` of a decoded frame, or null. */
export function rtviType(frame) {
  if (frame.kind === "message" && frame.data.label === RTVI_LABEL && typeof frame.data.type === "string") {
    return frame.data.type;
  }
  return null;
}

/** PCM16 little-endian bytes -> Float32Array in [-1, 1). */
export function pcm16ToFloat32(bytes) {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const count = bytes.byteLength >> 1;
  const out = new Float32Array(count);
  for (let i = 0; i < count; i++) out[i] = view.getInt16(2 * i, true) / 32768;
  return out;
}
