/**
 * The exec helper's frames: whatever way the byte stream is split into chunks (mid-header,
 * mid-payload, mid-character), the reader delivers exactly the frames written, in order.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { encodeFrame, FrameReader } from '../../../agent/dataplane/helper-frames.js';

type Frame = { header: { id: number }; payload: string | undefined };

function readAll(stream: Buffer, cuts: readonly number[]): Frame[] {
  const frames: Frame[] = [];
  const reader = new FrameReader<{ id: number; payloadBytes?: number }>((header, payload) => {
    const { payloadBytes: _bytes, ...rest } = header;
    frames.push({ header: rest, payload });
  });
  let at = 0;
  for (const cut of [...cuts].sort((a, b) => a - b)) {
    reader.push(stream.subarray(at, cut));
    at = cut;
  }
  reader.push(stream.subarray(at));
  return frames;
}

describe('helper frames', () => {
  it('delivers the frames written, in order, however the stream is split', () => {
    const payload = fc.option(fc.string({ unit: 'grapheme', maxLength: 200 }), { nil: undefined });
    fc.assert(
      fc.property(fc.array(payload, { maxLength: 8 }), fc.array(fc.nat(), { maxLength: 10 }), (payloads, rawCuts) => {
        const written = payloads.map((p, id) => ({ header: { id }, payload: p === '' ? undefined : p }));
        const stream = Buffer.concat(written.map((frame) => encodeFrame(frame.header, frame.payload)));
        const cuts = rawCuts.map((cut) => cut % (stream.length + 1));
        expect(readAll(stream, cuts)).toEqual(written);
      }),
    );
  });

  it('reads a payload larger than any chunk, with newlines and quotes kept verbatim', () => {
    const big = Array.from({ length: 50_000 }, (_, i) => `-A cali-x -m comment --comment "cali:${i}" -j ACCEPT`).join('\n');
    const stream = Buffer.concat([encodeFrame({ id: 1 }, big), encodeFrame({ id: 2 })]);
    const cuts = Array.from({ length: Math.floor(stream.length / 65_536) }, (_, i) => (i + 1) * 65_536);
    expect(readAll(stream, cuts)).toEqual([
      { header: { id: 1 }, payload: big },
      { header: { id: 2 }, payload: undefined },
    ]);
  });
});
