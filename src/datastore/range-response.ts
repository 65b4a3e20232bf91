/**
 * A decoder of etcd's `RangeResponse` (etcdserverpb, protobuf wire format) straight into what a
 * list needs: keys and values as strings, revisions as numbers, in parallel arrays.
 *
 * Why: the agent lists ~100k keys at start-up, and the generic path (protobuf.js decode, then
 * `toObject` with every int64 turned into a string through a Long, a Buffer per key and value,
 * then our own `toString`s) allocated four objects per key: ~250 ms of a 3 s list, plus the
 * garbage collection they caused. Here each key costs its two strings and two numbers.
 *
 * Invariants:
 * - For every response etcd sends, the result holds exactly the keys, values (UTF-8 decoded, as
 *   `Buffer#toString()` does), mod and create revisions, `more` and header revision that the
 *   generic decoder gives (test/datastore/range-response.test.ts holds it to protobuf.js).
 * - Fields it does not know are skipped by wire type, as protobuf requires; truncated or
 *   malformed input throws RangeResponseError (never a partial page).
 * - The revisions are read as numbers; one beyond 2^53 (no etcd reaches it) throws. Other 64-bit
 *   fields (cluster and member ids, leases) are skipped whatever their size.
 */

export interface DecodedRange {
  /** The header's revision: the store's revision when the range was served. */
  revision: number;
  /** More keys lie in the requested range beyond `limit`. */
  more: boolean;
  keys: string[];
  values: string[];
  modRevisions: number[];
  createRevisions: number[];
  /** Bytes of the keys and values together (what page sizing counts). */
  payloadBytes: number;
  /** The last key's bytes as etcd sent them (a key need not be valid UTF-8): where a next page starts. */
  lastKey: Buffer | undefined;
}

export class RangeResponseError extends Error {
  override readonly name = 'RangeResponseError';
}

const VARINT = 0;
const FIXED64 = 1;
const LENGTH_DELIMITED = 2;
const FIXED32 = 5;

/** A read position in one message's bytes. */
class Reader {
  pos: number;
  constructor(
    readonly buf: Buffer,
    start: number,
    readonly end: number,
  ) {
    this.pos = start;
  }

  /** An unsigned varint as a number (exact up to 2^53). */
  varint(): number {
    const { buf, end } = this;
    let value = 0;
    let scale = 1;
    for (let i = 0; i < 10; i++) {
      if (this.pos >= end) throw new RangeResponseError('etcd range response: truncated varint');
      const byte = buf[this.pos++]!;
      value += (byte & 0x7f) * scale;
      if (byte < 0x80) {
        if (value > Number.MAX_SAFE_INTEGER) throw new RangeResponseError('etcd range response: integer beyond 2^53');
        return value;
      }
      scale *= 128;
    }
    throw new RangeResponseError('etcd range response: varint longer than 10 bytes');
  }

  /** The end of a length-delimited field starting here (its bytes are [pos, end)). */
  lengthEnd(): number {
    const length = this.varint();
    const end = this.pos + length;
    if (end > this.end) throw new RangeResponseError('etcd range response: field runs past its message');
    return end;
  }

  /** Past a varint of any size (ids and leases are random 64-bit values). */
  skipVarint(): void {
    const { buf, end } = this;
    for (let i = 0; i < 10; i++) {
      if (this.pos >= end) throw new RangeResponseError('etcd range response: truncated varint');
      if (buf[this.pos++]! < 0x80) return;
    }
    throw new RangeResponseError('etcd range response: varint longer than 10 bytes');
  }

  skip(wireType: number): void {
    switch (wireType) {
      case VARINT:
        this.skipVarint();
        return;
      case FIXED64:
        this.pos += 8;
        break;
      case LENGTH_DELIMITED:
        this.pos = this.lengthEnd();
        return;
      case FIXED32:
        this.pos += 4;
        break;
      default:
        throw new RangeResponseError(`etcd range response: unsupported wire type ${wireType}`);
    }
    if (this.pos > this.end) throw new RangeResponseError('etcd range response: truncated fixed-size field');
  }
}

/** Decodes one serialized RangeResponse. */
export function decodeRangeResponse(buf: Buffer): DecodedRange {
  const page: DecodedRange = { revision: 0, more: false, keys: [], values: [], modRevisions: [], createRevisions: [], payloadBytes: 0, lastKey: undefined };
  const reader = new Reader(buf, 0, buf.length);
  const lastKey = { start: 0, end: 0 };
  while (reader.pos < reader.end) {
    const tag = reader.varint();
    const field = Math.floor(tag / 8);
    const wireType = tag & 7;
    if (field === 1 && wireType === LENGTH_DELIMITED) page.revision = headerRevision(reader);
    else if (field === 2 && wireType === LENGTH_DELIMITED) keyValue(reader, page, lastKey);
    else if (field === 3 && wireType === VARINT) page.more = reader.varint() !== 0;
    else reader.skip(wireType);
  }
  if (page.keys.length > 0) page.lastKey = Buffer.from(buf.subarray(lastKey.start, lastKey.end));
  return page;
}

/** ResponseHeader: the revision (field 3) only. */
function headerRevision(reader: Reader): number {
  const end = reader.lengthEnd();
  const header = new Reader(reader.buf, reader.pos, end);
  let revision = 0;
  while (header.pos < end) {
    const tag = header.varint();
    if (tag === (3 << 3) + VARINT) revision = header.varint();
    else header.skip(tag & 7);
  }
  reader.pos = end;
  return revision;
}

/** mvccpb.KeyValue: key (1), create_revision (2), mod_revision (3), value (5); the rest skipped. */
function keyValue(reader: Reader, page: DecodedRange, keyBytes: { start: number; end: number }): void {
  const end = reader.lengthEnd();
  const kv = new Reader(reader.buf, reader.pos, end);
  const { buf } = reader;
  keyBytes.start = keyBytes.end = kv.pos;
  let key = '';
  let value = '';
  let createRevision = 0;
  let modRevision = 0;
  while (kv.pos < end) {
    const tag = kv.varint();
    switch (tag) {
      case (1 << 3) + LENGTH_DELIMITED: {
        const stop = kv.lengthEnd();
        key = buf.toString('utf8', kv.pos, stop);
        keyBytes.start = kv.pos;
        keyBytes.end = stop;
        page.payloadBytes += stop - kv.pos;
        kv.pos = stop;
        break;
      }
      case (2 << 3) + VARINT:
        createRevision = kv.varint();
        break;
      case (3 << 3) + VARINT:
        modRevision = kv.varint();
        break;
      case (5 << 3) + LENGTH_DELIMITED: {
        const stop = kv.lengthEnd();
        value = buf.toString('utf8', kv.pos, stop);
        page.payloadBytes += stop - kv.pos;
        kv.pos = stop;
        break;
      }
      default:
        kv.skip(tag & 7);
    }
  }
  reader.pos = end;
  page.keys.push(key);
  page.values.push(value);
  page.modRevisions.push(modRevision);
  page.createRevisions.push(createRevision);
}
