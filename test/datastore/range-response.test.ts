/**
 * decodeRangeResponse against protobuf.js (etcd3's own encoder and decoder of the same message)
 * on random pages, on what the wire format allows beyond them (unknown fields, any wire type,
 * 64-bit ids), on malformed input; and `rangeDecoded` against `client.kv.range` on a real etcd.
 */
import fc from 'fast-check';
import type { Etcd3 } from 'etcd3';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { createEtcdClient, rangeDecoded } from '../../src/datastore/client.js';
import { decodeRangeResponse, RangeResponseError, type DecodedRange } from '../../src/datastore/range-response.js';
import { startEtcd, type EtcdInstance } from '../helpers/etcd.js';

interface RangeMethod {
  responseSerialize(value: unknown): Buffer;
  responseDeserialize(bytes: Buffer): { header: { revision: string }; kvs: { key: Buffer; value: Buffer; mod_revision: string; create_revision: string }[]; more: boolean };
}

let etcd: EtcdInstance;
let client: Etcd3;
/** etcd3's generated Range method: protobuf.js with the options etcd3 loads rpc.proto with. */
let protobufjs: RangeMethod;

beforeAll(async () => {
  etcd = await startEtcd();
  client = createEtcdClient({ endpoints: [etcd.endpoint], tls: {} });
  const pool = (client.kv as unknown as { client: { withConnection(service: string, use: (c: { client: object }) => Promise<object>): Promise<object> } }).client;
  const kv = await pool.withConnection('KV', async ({ client: grpcClient }) => grpcClient);
  protobufjs = (kv.constructor as unknown as { service: { Range: RangeMethod } }).service.Range;
});

afterAll(async () => {
  client?.close();
  await etcd?.stop();
});

/** The generic decoder's answer in DecodedRange's shape. */
function viaProtobufjs(bytes: Buffer): Omit<DecodedRange, 'lastKey'> & { lastKey: Buffer | undefined } {
  const response = protobufjs.responseDeserialize(bytes);
  const kvs = response.kvs;
  return {
    revision: Number(response.header.revision),
    more: response.more,
    keys: kvs.map((kv) => kv.key.toString()),
    values: kvs.map((kv) => kv.value.toString()),
    modRevisions: kvs.map((kv) => Number(kv.mod_revision)),
    createRevisions: kvs.map((kv) => Number(kv.create_revision)),
    payloadBytes: kvs.reduce((sum, kv) => sum + kv.key.length + kv.value.length, 0),
    lastKey: kvs.length > 0 ? kvs[kvs.length - 1]!.key : undefined,
  };
}

const bytes = fc.uint8Array({ maxLength: 40 }).map((array) => Buffer.from(array));
const revision = fc.integer({ min: 0, max: Number.MAX_SAFE_INTEGER });
/** Any 64-bit value, as protobuf.js takes it (a decimal string), including negatives. */
const int64 = fc.bigInt({ min: -(2n ** 63n), max: 2n ** 63n - 1n }).map(String);
const keyValue = fc.record({
  key: fc.oneof(bytes, fc.string({ unit: 'grapheme', maxLength: 20 }).map((text) => Buffer.from(text))),
  create_revision: revision,
  mod_revision: revision,
  version: int64,
  value: fc.oneof(bytes, fc.string({ unit: 'grapheme', maxLength: 60 }).map((text) => Buffer.from(text))),
  lease: int64,
});
const response = fc.record({
  header: fc.record({ cluster_id: fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }).map(String), member_id: int64, revision, raft_term: int64 }),
  kvs: fc.array(keyValue, { maxLength: 12 }),
  more: fc.boolean(),
  count: int64,
});

test('random responses decode as protobuf.js decodes them', () => {
  fc.assert(
    fc.property(response, (message) => {
      const encoded = protobufjs.responseSerialize(message);
      expect(decodeRangeResponse(encoded)).toEqual(viaProtobufjs(encoded));
    }),
    { numRuns: 500 },
  );
});

/** A protobuf field: tag varint then payload. */
function varint(value: bigint): Buffer {
  const out: number[] = [];
  let v = BigInt.asUintN(64, value);
  do {
    const low = Number(v & 0x7fn);
    v >>= 7n;
    out.push(v === 0n ? low : low | 0x80);
  } while (v !== 0n);
  return Buffer.from(out);
}
const field = (number: number, wireType: number, payload: Buffer): Buffer => Buffer.concat([varint(BigInt(number * 8 + wireType)), payload]);
const delimited = (number: number, payload: Buffer): Buffer => field(number, 2, Buffer.concat([varint(BigInt(payload.length)), payload]));

test('unknown fields of every wire type, in the response, its header and its key-values, are skipped', () => {
  const unknown = Buffer.concat([field(9, 0, varint(-5n)), field(10, 1, Buffer.alloc(8, 7)), delimited(11, Buffer.from('junk')), field(12, 5, Buffer.alloc(4, 9))]);
  const header = Buffer.concat([unknown, field(1, 0, varint(2n ** 64n - 1n)), field(3, 0, varint(42n)), unknown]);
  const kv = Buffer.concat([unknown, delimited(1, Buffer.from('/calico/v1/k')), field(3, 0, varint(7n)), field(6, 0, varint(-1n)), delimited(5, Buffer.from('v')), unknown]);
  const message = Buffer.concat([unknown, delimited(1, header), delimited(2, kv), unknown, field(3, 0, varint(1n)), unknown]);
  expect(decodeRangeResponse(message)).toEqual({
    ...viaProtobufjs(message),
    revision: 42,
    keys: ['/calico/v1/k'],
    values: ['v'],
    modRevisions: [7],
    createRevisions: [0],
    more: true,
  });
});

test('malformed input throws RangeResponseError, never a partial page', () => {
  const kv = delimited(2, Buffer.concat([delimited(1, Buffer.from('/k')), field(3, 0, varint(3n))]));
  const whole = Buffer.concat([delimited(1, field(3, 0, varint(9n))), kv, kv]);
  expect(decodeRangeResponse(whole).keys).toEqual(['/k', '/k']);
  for (let cut = 1; cut < whole.length; cut++) {
    // Every prefix that ends inside a field is refused; one that ends between fields is a valid message.
    const prefix = whole.subarray(0, cut);
    let valid = true;
    try {
      protobufjs.responseDeserialize(prefix);
    } catch {
      valid = false;
    }
    if (valid) expect(decodeRangeResponse(prefix)).toEqual(viaProtobufjs(prefix));
    else expect(() => decodeRangeResponse(prefix)).toThrow(RangeResponseError);
  }
  expect(() => decodeRangeResponse(field(1, 3, Buffer.alloc(0)))).toThrow(/wire type 3/);
  expect(() => decodeRangeResponse(delimited(1, field(3, 0, varint(2n ** 60n))))).toThrow(/beyond 2\^53/);
  expect(() => decodeRangeResponse(Buffer.alloc(11, 0xff))).toThrow(/longer than 10 bytes/);
});

test('rangeDecoded answers as client.kv.range does, on a real etcd (UTF-8 and raw-byte keys, pages, revisions)', async () => {
  const keys = [Buffer.from('/calico/v1/a'), Buffer.from('/calico/v1/b\u00e9\u{1f600}'), Buffer.from([...Buffer.from('/calico/v1/c'), 0xff, 0xfe]), Buffer.from('/calico/v1/d')];
  for (const [i, key] of keys.entries()) await client.put(key).value(`value ${i} \u00fc`);
  const first = await client.put(keys[0]!).value('rewritten');
  const request = { key: Buffer.from('/calico/v1/'), range_end: Buffer.from('/calico/v10'), limit: 3 };
  const generic = await client.kv.range(request);
  const decoded = await rangeDecoded(client, request);
  expect(decoded.more).toBe(true);
  expect(decoded.revision).toBe(Number(first.header.revision));
  expect(decoded.keys).toEqual(generic.kvs.map((kv) => kv.key.toString()));
  expect(decoded.values).toEqual(generic.kvs.map((kv) => kv.value.toString()));
  expect(decoded.values[0]).toBe('rewritten');
  expect(decoded.modRevisions).toEqual(generic.kvs.map((kv) => Number(kv.mod_revision)));
  expect(decoded.createRevisions).toEqual(generic.kvs.map((kv) => Number(kv.create_revision)));
  expect(decoded.modRevisions[0]).toBeGreaterThan(decoded.createRevisions[0]!);
  // The raw bytes of a key that is not UTF-8 are kept for the next page's start.
  expect(decoded.lastKey).toEqual(keys[2]);
  const rest = await rangeDecoded(client, { ...request, key: Buffer.concat([decoded.lastKey!, Buffer.from([0])]), revision: String(decoded.revision) });
  expect(rest.keys).toEqual(['/calico/v1/d']);
  expect(rest.more).toBe(false);
  const keysOnly = await rangeDecoded(client, { ...request, keys_only: true });
  expect(keysOnly.keys).toEqual(decoded.keys);
  expect(keysOnly.values).toEqual(['', '', '']);
});
