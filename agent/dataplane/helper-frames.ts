/**
 * The exec helper's wire format (both directions): a frame is one JSON header line, then
 * `payloadBytes` raw bytes (UTF-8 text; none when the header has no `payloadBytes`).
 *
 * Why not JSON alone: a 20 MB `iptables-save` output or restore input escaped into one JSON line
 * is held three times over by the reader (the line as read, the parsed copy, the string inside);
 * as a raw payload it is read as buffers and decoded once.
 *
 * Invariant: a reader fed any split of the byte stream delivers the same frames, in order.
 */

/** The bytes of one frame: `header` (whose `payloadBytes` is set here) and the optional payload. */
export function encodeFrame(header: Record<string, unknown>, payload?: string): Buffer {
  const body = payload === undefined ? undefined : Buffer.from(payload, 'utf8');
  const line = Buffer.from(`${JSON.stringify(body === undefined ? header : { ...header, payloadBytes: body.length })}\n`, 'utf8');
  return body === undefined ? line : Buffer.concat([line, body]);
}

/** Splits a byte stream into frames; calls `onFrame` with each header and its payload text. */
export class FrameReader<Header extends object> {
  private chunks: Buffer[] = [];
  private buffered = 0;
  /** The header whose payload is being read, or undefined while a header line is awaited. */
  private header: Header | undefined;
  private payloadBytes = 0;

  constructor(private readonly onFrame: (header: Header, payload: string | undefined) => void) {}

  push(chunk: Buffer): void {
    this.chunks.push(chunk);
    this.buffered += chunk.length;
    for (;;) {
      if (this.header === undefined) {
        const line = this.takeLine();
        if (line === undefined) return;
        const header = JSON.parse(line) as Header & { payloadBytes?: number };
        if (!header.payloadBytes) {
          this.onFrame(header, undefined);
          continue;
        }
        this.header = header;
        this.payloadBytes = header.payloadBytes;
      }
      if (this.buffered < this.payloadBytes) return;
      const header = this.header;
      this.header = undefined;
      this.onFrame(header, this.take(this.payloadBytes).toString('utf8'));
    }
  }

  /** The next header line without its newline, or undefined until one has fully arrived. */
  private takeLine(): string | undefined {
    let offset = 0;
    for (const chunk of this.chunks) {
      const at = chunk.indexOf(0x0a);
      if (at >= 0) {
        const line = this.take(offset + at + 1);
        return line.toString('utf8', 0, line.length - 1);
      }
      offset += chunk.length;
    }
    return undefined;
  }

  /** Removes and returns the first `bytes` buffered bytes. */
  private take(bytes: number): Buffer {
    const all = this.chunks.length === 1 ? this.chunks[0]! : Buffer.concat(this.chunks, this.buffered);
    // After a large payload the rest is copied, so that it does not keep the payload's memory.
    const rest = all.subarray(bytes);
    this.chunks = rest.length === 0 ? [] : [bytes > 65_536 ? Buffer.from(rest) : rest];
    this.buffered -= bytes;
    return all.subarray(0, bytes);
  }
}
