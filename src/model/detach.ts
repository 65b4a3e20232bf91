/**
 * Copies a string into one of its own. V8 makes a substring of 13 or more characters a view into
 * its parent, and a concatenation a tree of its parts, so a set member cut from a CIDR, a rule
 * built from fragments, or a chain name cut from a 10 MB `*-save` output would keep more alive
 * than its characters for as long as it is held. Long-lived strings pass through this.
 */
export function detach(text: string): string {
  return text.length < 13 ? text : Buffer.from(text, 'utf8').toString('utf8');
}
