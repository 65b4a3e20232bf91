/**
 * The failures a calicoctl command reports (main.ts maps them to stderr and an exit status).
 * Kept apart from everything else so that `--help` and usage errors load nothing more.
 */

/** A failure to report on stderr (one or more lines) with exit status 1. */
export class CliError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'CliError';
  }
}

/** Bad command syntax: print `usage` on stderr, exit status 1. */
export class UsageError extends Error {
  constructor(readonly usage: string) {
    super('invalid command syntax');
    this.name = 'UsageError';
  }
}
