/**
 * Deterministic hashing used for kernel object names and rule fingerprints (pure computation).
 */
import { createHash } from 'node:crypto';

export function sha256Hex(text: string): string {
  return createHash('sha256').update(text, 'utf8').digest('hex');
}

/**
 * Felix's `uniquely_shorten(s, n)`: `s` itself when it fits in `n` characters (and does not look
 * like a hash), else `_` followed by the first `n-1` hex digits of SHA-256 over `"<n> " + s`.
 */
export function uniquelyShorten(text: string, maxLength: number): string {
  if (text.length < maxLength || (text.length === maxLength && !text.startsWith('_'))) return text;
  return `_${sha256Hex(`${maxLength} ${text}`).slice(0, maxLength - 1)}`;
}
