/** The printed table: one line per row, figures rounded for reading (the JSON keeps them all). */

function fmt(v, unit) {
  if (v === null || v === undefined) return '–';
  if (!Number.isFinite(v)) return String(v);
  const size = Math.abs(v);
  const digits = ['×', 's', 'cores'].includes(unit) || size < 10 ? 2 : size < 1000 ? 1 : 0;
  return v.toLocaleString('en', { maximumFractionDigits: digits, minimumFractionDigits: digits });
}

function verdict(r) {
  if (r.target === null) return '';
  if (r.met === null) return 'n/a';
  return r.met ? 'met' : 'NOT met';
}

export function renderTable(rows) {
  const header = ['case', 'measure', 'median', 'min', 'max', 'unit', 'target', 'result'];
  const lines = rows.map((r) => [
    r.case, r.metric + (r.note ? ` [${r.note}]` : ''), fmt(r.median, r.unit), fmt(r.min, r.unit),
    fmt(r.max, r.unit), r.unit, r.target ?? '', verdict(r),
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...lines.map((l) => String(l[i]).length)));
  const right = new Set([2, 3, 4]);
  const cell = (text, i) => (right.has(i) ? String(text).padStart(widths[i])
    : String(text).padEnd(widths[i]));
  const out = [header.map(cell).join('  '), widths.map((w) => '-'.repeat(w)).join('  ')];
  for (const l of lines) out.push(l.map(cell).join('  ').trimEnd());
  return out.join('\n');
}

/** The same table as Markdown, for RESULTS.md and the README. */
export function renderMarkdown(rows) {
  const out = ['| case | measure | median | min | max | unit | target | result |',
    '|---|---|--:|--:|--:|---|---|---|'];
  for (const r of rows) {
    const cells = [r.case, r.metric + (r.note ? ` *(${r.note})*` : ''), fmt(r.median, r.unit),
      fmt(r.min, r.unit), fmt(r.max, r.unit), r.unit, r.target ?? '',
      verdict(r) === 'NOT met' ? '**NOT met**' : verdict(r)];
    out.push(`| ${cells.join(' | ')} |`);
  }
  return out.join('\n');
}
