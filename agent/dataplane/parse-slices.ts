/**
 * How the `*-save` parsers share the agent's event loop: they handle this many lines, then yield
 * (a turn of the loop) so that a pass applying a change is never held up behind a verification
 * read's parse of a 10 MB output.
 */
export const LINES_PER_SLICE = 8192;

/** Resolves on the next turn of the event loop (after pending I/O callbacks). */
export const nextTurn = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));
