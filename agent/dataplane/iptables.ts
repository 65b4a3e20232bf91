/**
 * Reads and writes one iptables table of one family: `ip[6]tables-save -c -t <table>` parsed into
 * a KernelTableState (with the packet counters of our rules), and `ip[6]tables-restore --noflush`
 * fed restore text.
 *
 * Invariants:
 * - The reader never interprets rule text beyond the hash comment (Felix design goal: rules do not
 *   round-trip). For our chains (`isOwnedChain`) it keeps one entry per rule: the id from the
 *   FIRST comment whose value starts with `cali:` (prefix stripped), or null when there is none
 *   (a foreign or tampered rule). For the built-in chains we hook it keeps every rule's text as
 *   printed, minus `-A <chain> `, so a stale hook can be deleted by specification.
 * - Chains are reported even when empty (declared by `:<chain> …`).
 * - Restores never flush the table (`--noflush`) and wait for the xtables lock (`--wait=10`).
 */
import type { IpFamily, KernelTableState, TableName, BuiltinRule, RuleCounter } from '../../compiler/types.js';
import { HASH_COMMENT_PREFIX, isOwnedChain } from '../../compiler/names.js';
import { runChecked } from './command-runner.js';
import { detach } from '../../src/model/index.js';
import { forEachLine } from './parse-slices.js';
import type { IptablesBackend } from './iptables-backend.js';
import type { CommandResult, CommandRunner } from './types.js';

/** The built-in chains of each table that carry our hooks. */
export const HOOKED_BUILTINS: Readonly<Record<TableName, readonly string[]>> = {
  filter: ['INPUT', 'FORWARD', 'OUTPUT'],
  raw: ['PREROUTING'],
};

/** Seconds `iptables-restore` waits for the xtables lock (legacy; accepted and unused by nft). */
export const XTABLES_LOCK_WAIT_SECONDS = 10;

/**
 * Splits an iptables-save rule into words, undoing its quoting: `"…"` groups words and inside it
 * `\"` and `\\` are escapes (xtables_save_string). Unquoted words are taken as they are.
 */
export function splitSaveWords(text: string): string[] {
  const words: string[] = [];
  let i = 0;
  while (i < text.length) {
    while (text[i] === ' ' || text[i] === '\t') i++;
    if (i >= text.length) break;
    let word = '';
    while (i < text.length && text[i] !== ' ' && text[i] !== '\t') {
      if (text[i] === '"') {
        i++;
        while (i < text.length && text[i] !== '"') {
          if (text[i] === '\\' && i + 1 < text.length) i++;
          word += text[i];
          i++;
        }
        i++; // closing quote
      } else {
        word += text[i];
        i++;
      }
    }
    words.push(word);
  }
  return words;
}

const COMMENT_OPTION = '--comment ';
const SINGLE_HASH_COMMENT = new RegExp(`^--comment (?:"${HASH_COMMENT_PREFIX}([^"\\\\\\s]*)"|${HASH_COMMENT_PREFIX}([^"\\\\\\s]*))(?:\\s|$)`);

/** The id of our hash comment in a rule (`--comment "cali:<id>"` → `<id>`), or null. */
export function extractHash(ruleText: string): string | null {
  if (!ruleText.includes(HASH_COMMENT_PREFIX)) return null;
  // Fast path: the first `--comment ` is our hash and the rule holds no other quoted text, so that
  // occurrence cannot be inside some other option's quoted value.
  const first = ruleText.indexOf(COMMENT_OPTION);
  const simple = first < 0 ? null : SINGLE_HASH_COMMENT.exec(ruleText.slice(first));
  if (simple) {
    const quotes = ruleText.split('"').length - 1;
    if (simple[1] !== undefined && quotes === 2) return simple[1];
    if (simple[2] !== undefined && quotes === 0) return simple[2];
  }
  const words = splitSaveWords(ruleText);
  for (let i = 0; i + 1 < words.length; i++) {
    if (words[i] !== '--comment') continue;
    const value = words[i + 1] as string;
    if (value.startsWith(HASH_COMMENT_PREFIX)) return value.slice(HASH_COMMENT_PREFIX.length);
    i++; // skip the value: it is not an option even if it looks like one
  }
  return null;
}

/**
 * Parses `iptables-save` output for one table (other tables' sections are ignored), with or
 * without `-c` counters; the counters of our rules that matched any packet are kept by hash. A
 * table of ~70k rules is ~5 MB of text: it yields between slices of lines (parse-slices.ts).
 */
export async function parseIptablesSave(text: string, table: TableName): Promise<KernelTableState> {
  const hooked = new Set(HOOKED_BUILTINS[table]);
  const chains = new Map<string, (string | null)[]>();
  const builtins = new Map<string, BuiltinRule[]>();
  const counters = new Map<string, RuleCounter>();
  let inTable = false;
  await forEachLine(text, (start, end) => {
    const line = text.slice(start, end).trimEnd();
    if (line.startsWith('*')) {
      inTable = line.slice(1) === table;
      return;
    }
    if (!inTable) return;
    if (line === 'COMMIT') {
      inTable = false;
      return;
    }
    if (line.startsWith(':')) {
      const name = line.slice(1).split(' ')[0] ?? '';
      if (isOwnedChain(name)) chains.set(detach(name), []);
      else if (hooked.has(name)) builtins.set(name, []);
      return;
    }
    // With `-c`, a rule line starts with its counters: `[packets:bytes] -A …`.
    let ruleLine = line;
    let packets = 0;
    let bytes = 0;
    if (line.startsWith('[')) {
      const close = line.indexOf('] ');
      const colon = line.indexOf(':');
      if (close < 0 || colon < 0 || colon > close) return;
      packets = Number(line.slice(1, colon));
      bytes = Number(line.slice(colon + 1, close));
      ruleLine = line.slice(close + 2);
    }
    if (!ruleLine.startsWith('-A ')) return;
    const nameEnd = ruleLine.indexOf(' ', 3);
    const name = nameEnd < 0 ? ruleLine.slice(3) : ruleLine.slice(3, nameEnd);
    const rule = nameEnd < 0 ? '' : ruleLine.slice(nameEnd + 1);
    // What is kept is detached from the save output (detach.ts), which is then freed.
    if (isOwnedChain(name)) {
      let hashes = chains.get(name);
      if (!hashes) chains.set(detach(name), (hashes = []));
      const hash = extractHash(rule);
      hashes.push(hash === null ? null : detach(hash));
      if (hash !== null && packets > 0) counters.set(detach(hash), { packets, bytes });
    } else if (hooked.has(name)) {
      let rules = builtins.get(name);
      if (!rules) builtins.set(name, (rules = []));
      const hash = extractHash(rule);
      rules.push({ hash: hash === null ? null : detach(hash), rule: detach(rule) });
    }
  });
  return { chains, builtins, counters };
}

export interface TableIo {
  /** Reads one table; resolves with the parsed state and the raw save output (for logs). */
  readTable(family: IpFamily, table: TableName, signal?: AbortSignal): Promise<{ state: KernelTableState; result: CommandResult }>;
  /** Feeds restore text to `ip[6]tables-restore --noflush`; rejects with a CommandError. */
  restore(family: IpFamily, table: TableName, input: string): Promise<CommandResult>;
}

export function createTableIo(runner: CommandRunner, backend: IptablesBackend): TableIo {
  return {
    async readTable(family, table, signal) {
      const result = await runChecked(runner, [backend.binaries[family].save, '-c', '-t', table], signal ? { signal } : {});
      return { state: await parseIptablesSave(result.stdout, table), result };
    },
    async restore(family, table, input) {
      const foreign = input.split('\n').find((line) => line.startsWith('*') && line.trim() !== `*${table}`);
      if (foreign !== undefined) throw new Error(`restore input for table ${table} contains ${foreign.trim()}`);
      return runChecked(runner, [backend.binaries[family].restore, '--noflush', `--wait=${XTABLES_LOCK_WAIT_SECONDS}`], { input });
    },
  };
}
