/** Test helper: reading `iptables-save` output, with or without `-c` counters. */

/** The `-A <chain> …` rules of one chain, in order (a `[packets:bytes] ` prefix is dropped). */
export function chainRules(save: string, chain: string): string[] {
  return save
    .split('\n')
    .map((line) => line.replace(/^\[\d+:\d+\] /, ''))
    .filter((line) => line.startsWith(`-A ${chain} `));
}
