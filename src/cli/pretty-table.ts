/**
 * Text tables exactly as PrettyTable 0.7.2 printed them for calicoctl: `+`/`-`/`|` borders, one
 * space of padding, header framed by rules, every cell centred. When the slack is odd,
 * odd-length text gets the extra space on the right and even-length text on the left. Cells may
 * hold several lines (top-aligned). Pure: returns the text without a trailing newline.
 */

function centre(text: string, width: number): string {
  const excess = width - text.length;
  const half = Math.floor(excess / 2);
  if (excess % 2 === 0) return ' '.repeat(half) + text + ' '.repeat(half);
  return text.length % 2 === 1
    ? ' '.repeat(half) + text + ' '.repeat(half + 1)
    : ' '.repeat(half + 1) + text + ' '.repeat(half);
}

export function renderTable(headers: readonly string[], rows: readonly (readonly string[])[]): string {
  const cellLines = (cell: string): string[] => cell.split('\n');
  const widths = headers.map((header, column) =>
    Math.max(header.length, ...rows.flatMap((row) => cellLines(row[column] ?? '').map((line) => line.length))),
  );
  const rule = `+${widths.map((w) => '-'.repeat(w + 2)).join('+')}+`;
  const line = (cells: readonly string[]): string =>
    `|${cells.map((cell, column) => ` ${centre(cell, widths[column]!)} `).join('|')}|`;
  const out = [rule, line(headers), rule];
  for (const row of rows) {
    const split = headers.map((_, column) => cellLines(row[column] ?? ''));
    const height = Math.max(...split.map((lines) => lines.length));
    for (let i = 0; i < height; i++) out.push(line(split.map((lines) => lines[i] ?? '')));
  }
  out.push(rule);
  return out.join('\n');
}

/** Rows sorted as Python sorts lists of strings (column by column, code-point order). */
export function sortRows(rows: string[][]): string[][] {
  return [...rows].sort((a, b) => {
    for (let i = 0; i < Math.max(a.length, b.length); i++) {
      const x = a[i] ?? '';
      const y = b[i] ?? '';
      if (x !== y) return x < y ? -1 : 1;
    }
    return 0;
  });
}
