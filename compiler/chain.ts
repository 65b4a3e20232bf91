/**
 * Turns rule bodies into a ChainSpec: every rule gets a hash comment first, where the hash chains
 * over (chain name, previous rule's hash, rule body) as in Felix Go's `RuleHashes`, so a rule's
 * hash changes when its text, its position or anything before it changes. The kernel is later
 * compared with the desired state through these hashes only.
 *
 * Rule bodies use iptables long options, single spaces, no leading/trailing space; a body never
 * contains the hash comment (it is prepended here).
 */
import { sha256Hex } from '../src/model/index.js';
import { hashComment } from './names.js';
import type { ChainSpec, HookSpec } from './types.js';

const HASH_LENGTH = 16;

/** The hash of one rule given its chain and the previous rule's hash ('' for the first rule). */
export function ruleHash(chain: string, previousHash: string, body: string): string {
  return sha256Hex(`${chain}\u0000${previousHash}\u0000${body}`, HASH_LENGTH);
}

export function buildChain(name: string, bodies: readonly string[]): ChainSpec {
  const rules: string[] = [];
  const hashes: string[] = [];
  let previous = '';
  for (const body of bodies) {
    const hash = ruleHash(name, previous, body);
    hashes.push(hash);
    // join() builds one flat string; a template literal would keep a tree of the fragments.
    rules.push([hashComment(hash), body].join(' '));
    previous = hash;
  }
  return { name, rules, hashes };
}

/** A hook rule for position 1 of a built-in chain; hashed like the first rule of that chain. */
export function buildHook(builtin: HookSpec['builtin'], body: string): HookSpec {
  const hash = ruleHash(builtin, '', body);
  return { builtin, rule: `${hashComment(hash)} ${body}`, hash };
}

/** `-m comment --comment "<text>"`, truncated to the kernel's 255-character limit. */
export function comment(text: string): string {
  return `-m comment --comment "${text.slice(0, 255)}"`;
}

/** Joins non-empty fragments with single spaces. */
export function join(...fragments: readonly string[]): string {
  return fragments.filter((f) => f !== '').join(' ');
}

/** `0x1000000`-style hex for marks. */
export function hex(value: number): string {
  return `0x${value.toString(16)}`;
}
