/**
 * How the `*-save` parsers walk their input and share the agent's event loop: line by line by
 * offsets (no array of all lines of a 10 MB output), yielding a turn of the loop every
 * LINES_PER_SLICE lines, so that a pass applying a change is never held up behind a
 * verification read's parse.
 */
const LINES_PER_SLICE = 8192;

const nextTurn = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

/** Calls `visit(start, end)` for each line of `text` (`end` excludes the newline), in order. */
export async function forEachLine(text: string, visit: (start: number, end: number) => void): Promise<void> {
  let lines = 0;
  for (let start = 0; start < text.length; ) {
    if (++lines % LINES_PER_SLICE === 0) await nextTurn();
    let end = text.indexOf('\n', start);
    if (end < 0) end = text.length;
    visit(start, end);
    start = end + 1;
  }
}
