import { createWriteStream, type WriteStream } from 'node:fs';
import { open } from 'node:fs/promises';
import path from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { parse, type CsvError } from 'csv-parse';
import type { ISql } from 'postgres';
import type { CountryCode } from 'libphonenumber-js';
import {
  campaignStatus, copyField, lockCampaignImport, mergeStaging, openStaging,
} from '../db/import.js';
import { usageError } from '../errors.js';
import { isCountryCode, normalizePhone } from '../phone.js';
import { makeContext, openDatabase, type GlobalOptions } from './context.js';
import { campaignId } from './send.js';
import { writeStdout } from './stdout.js';

/**
 * `wacamp import <id> <file.csv>`: streams a CSV of any size into a campaign's recipients.
 * Memory stays flat: records are parsed, normalised and handed to COPY as they are read.
 */
export interface ImportFlags extends GlobalOptions {
  phoneColumn: string; defaultCountry?: string; bodyColumns?: string; rejects?: string;
  delimiter: string;
}

export interface ImportOptions {
  file: string;
  phoneColumn: string;
  /** Body parameters {{1}}..{{n}} in this order; null: every other column is a named variable. */
  bodyColumns: string[] | null;
  defaultCountry?: CountryCode;
  rejectsFile: string;
  delimiter: string;
}

export interface ImportReport {
  file: string; rows: number; accepted: number; duplicates: number; rejected: number;
  rejectsFile: string | null;
}

type Tx = ISql<Record<string, never>>;

export function importOptions(
  file: string, f: Omit<ImportFlags, keyof GlobalOptions>,
): ImportOptions {
  const country = f.defaultCountry?.toUpperCase();
  if (country !== undefined && !isCountryCode(country)) {
    throw usageError('bad_country', `--default-country: "${f.defaultCountry}" is not an ISO ` +
      'country code such as US or GB');
  }
  if ([...f.delimiter].length !== 1) {
    throw usageError('bad_delimiter', `--delimiter: "${f.delimiter}" must be one character`);
  }
  const body = f.bodyColumns?.split(',').map((c) => c.trim());
  if (body?.some((c) => c === '')) {
    throw usageError('bad_columns', `--body-columns: "${f.bodyColumns}" must be column names ` +
      'separated by commas');
  }
  const parsed = path.parse(file);
  return {
    file, phoneColumn: f.phoneColumn.trim(), bodyColumns: body ?? null,
    ...(country && isCountryCode(country) ? { defaultCountry: country } : {}),
    rejectsFile: f.rejects ?? path.join(parsed.dir, `${parsed.name}.rejected.csv`),
    delimiter: f.delimiter,
  };
}

export async function importCommand(id: string, file: string, f: ImportFlags): Promise<number> {
  const ctx = makeContext(f);
  const cid = campaignId(id);
  const o = importOptions(file, f);
  const { db } = await openDatabase(ctx, f, { recover: false });
  try {
    const report = await db.begin(async (tx) => {
      await lockCampaignImport(tx as unknown as Tx, cid);
      const status = await campaignStatus(tx as unknown as Tx, cid);
      if (status === null) {
        throw usageError('campaign_not_found', `campaign ${cid} does not exist`);
      }
      if (status === 'cancelled') {
        throw usageError('campaign_cancelled', `campaign ${cid} is cancelled; it is never sent`);
      }
      return importCsv(tx as unknown as Tx, cid, o);
    });
    if (ctx.json) writeStdout(JSON.stringify({ campaign_id: cid, ...importJson(report) }) + '\n');
    else writeStdout(importLine(cid, report) + '\n');
    return 0;
  } finally {
    await db.end({ timeout: 5 });
  }
}

export function importJson(r: ImportReport): object {
  return { file: r.file, rows: r.rows, accepted: r.accepted, duplicates: r.duplicates,
    rejected: r.rejected, rejects_file: r.rejectsFile };
}

export function importLine(cid: string, r: ImportReport): string {
  return `imported ${r.file} into campaign ${cid}: ${r.accepted} accepted, ` +
    `${r.duplicates} duplicate, ${r.rejected} rejected` +
    (r.rejectsFile ? ` (rows and reasons in ${r.rejectsFile})` : '');
}

/** Streams the file into the campaign inside the caller's transaction. */
export async function importCsv(tx: Tx, cid: string, o: ImportOptions): Promise<ImportReport> {
  const input = await openInput(o.file);
  const rejects = new RejectWriter(o.rejectsFile);
  const counts = { rows: 0, staged: 0, rejected: 0 };
  let columns: Columns | null = null;
  const parser = parse({
    columns: (header: string[]) => {
      columns = resolveColumns(header, o);
      return columns.names;
    },
    delimiter: o.delimiter, bom: true, trim: true, skip_empty_lines: true, relax_quotes: true,
    skip_records_with_error: true, raw: true, info: true,
    // An unclosed quote would otherwise swallow the rest of the file into one field.
    max_record_size: 64 * 1024,
  });
  parser.on('skip', (err: CsvError & { lines?: number; raw?: string }) => {
    // csv-parse stops reading after an oversized record: the rest of the file would be lost
    // without a word, so the whole import fails instead (its transaction adds nobody).
    if (err.code === 'CSV_MAX_RECORD_SIZE') {
      parser.destroy(usageError('csv_unclosed_quote', `${o.file} line ${err.lines ?? '?'}: ` +
        'a quoted field runs on for more than 64 KB, most likely a quote that is never ' +
        'closed; fix the file and import it again'));
      return;
    }
    counts.rows++;
    counts.rejected++;
    void rejects.add(err.lines ?? 0, `malformed_row: ${err.message}`, err.raw ?? '');
  });
  input.on('error', (err) => parser.destroy(err));

  const copy = await openStaging(tx);
  try {
    const records = input.pipe(parser) as AsyncIterable<ParsedRecord>;
    await pipeline(Readable.from(copyChunks(records, () => columns!, o, counts, rejects)), copy);
  } finally {
    input.destroy();
    await rejects.close();
  }
  const accepted = await mergeStaging(tx, cid);
  return {
    file: o.file, rows: counts.rows, accepted, duplicates: counts.staged - accepted,
    rejected: counts.rejected, rejectsFile: rejects.used ? o.rejectsFile : null,
  };
}

interface ParsedRecord { record: Record<string, string>; raw: string; info: { lines: number } }

const CHUNK_CHARS = 64 * 1024;

/** COPY text for the staged rows, in chunks; rejected rows go to the rejects file instead. */
async function* copyChunks(
  records: AsyncIterable<ParsedRecord>, columns: () => Columns, o: ImportOptions,
  counts: { rows: number; staged: number; rejected: number }, rejects: RejectWriter,
): AsyncGenerator<string> {
  let chunk = '';
  for await (const { record, raw, info } of records) {
    counts.rows++;
    const row = mapRecord(record, columns(), o.defaultCountry);
    if (!row.ok) {
      counts.rejected++;
      await rejects.add(info.lines, row.reason, raw);
      continue;
    }
    counts.staged++;
    const variables = row.variables === null ? null : JSON.stringify(row.variables);
    chunk += `${info.lines}\t${copyField(row.phone)}\t${row.e164}\t${copyField(variables)}\n`;
    if (chunk.length >= CHUNK_CHARS) {
      yield chunk;
      chunk = '';
    }
  }
  if (chunk) yield chunk;
}

export interface Columns {
  /** The header as parsed (trimmed): the keys of each record. */
  names: string[];
  phone: string;
  body: string[] | null;
  named: string[];
}

/** Finds the named columns in the header, exactly or else ignoring case. */
export function resolveColumns(
  header: string[], o: Pick<ImportOptions, 'phoneColumn' | 'bodyColumns'>,
): Columns {
  const names = header.map((h) => h.trim());
  const twice = names.find((n, i) => names.indexOf(n) !== i);
  if (twice !== undefined) {
    throw usageError('bad_header', `the CSV header names column "${twice}" twice`);
  }
  const find = (flag: string, wanted: string): string => {
    const exact = names.find((n) => n === wanted);
    const loose = names.filter((n) => n.toLowerCase() === wanted.toLowerCase());
    const found = exact ?? (loose.length === 1 ? loose[0] : undefined);
    if (found === undefined) {
      throw usageError('bad_header', `${flag}: the CSV has no column "${wanted}" ` +
        `(its header: ${names.map((n) => `"${n}"`).join(', ').slice(0, 300)})`);
    }
    return found;
  };
  const phone = find('--phone-column', o.phoneColumn);
  const body = o.bodyColumns?.map((c) => find('--body-columns', c)) ?? null;
  return { names, phone, body, named: body ? [] : names.filter((n) => n !== phone && n !== '') };
}

export type MappedRow =
  | { ok: true; phone: string; e164: string; variables: string[] | Record<string, string> | null }
  | { ok: false; reason: string };

/** One record to a recipient row, or the reason it is rejected. Pure. */
export function mapRecord(
  record: Record<string, string>, c: Columns, country?: CountryCode,
): MappedRow {
  const raw = record[c.phone] ?? '';
  const phone = normalizePhone(raw, country);
  if (!phone.ok) return { ok: false, reason: `${phone.code}: ${phone.reason}` };
  if (c.body) {
    const values = c.body.map((name) => record[name] ?? '');
    const empty = c.body.find((_, i) => values[i]!.trim() === '');
    if (empty !== undefined) {
      return { ok: false, reason: `empty_value: column "${empty}" is empty` };
    }
    return { ok: true, phone: raw, e164: phone.e164, variables: values };
  }
  const variables = c.named.length === 0 ? null
    : Object.fromEntries(c.named.map((name) => [name, record[name] ?? '']));
  return { ok: true, phone: raw, e164: phone.e164, variables };
}

async function openInput(file: string): Promise<Readable> {
  try {
    const handle = await open(file, 'r');
    return handle.createReadStream();
  } catch (err) {
    throw usageError('csv_unreadable', `cannot read ${file}: ${(err as Error).message}`, err);
  }
}

/** The rejects file: created on the first rejected row, CSV of line, reason and the raw row. */
class RejectWriter {
  private out: WriteStream | null = null;
  private failed: Error | null = null;

  constructor(private readonly file: string) {}

  get used(): boolean {
    return this.out !== null;
  }

  async add(line: number, reason: string, raw: string): Promise<void> {
    if (!this.out) {
      this.out = createWriteStream(this.file);
      // Kept for close(): a rejects file we cannot write fails the import, rows unsaved.
      this.out.on('error', (err) => { this.failed ??= err; });
      this.out.write('line,reason,row\n');
    }
    if (this.failed) return;
    const row = raw.replace(/^[\r\n]+|[\r\n]+$/g, '');
    if (!this.out.write(`${line},${csvField(reason)},${csvField(row)}\n`)) {
      await drainedOrClosed(this.out);
    }
  }

  async close(): Promise<void> {
    if (!this.out) return;
    const out = this.out;
    if (!this.failed) await new Promise<void>((resolve) => out.end(resolve));
    if (this.failed) {
      throw usageError('rejects_unwritable', `cannot write the rejects file ${this.file}: ` +
        `${this.failed.message}; pass --rejects <file> somewhere writable`, this.failed);
    }
  }
}

/** Never rejects: a write error is kept by the 'error' listener and reported by close(). */
function drainedOrClosed(out: WriteStream): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      out.off('drain', done);
      out.off('close', done);
      resolve();
    };
    out.on('drain', done);
    out.on('close', done);
  });
}

function csvField(text: string): string {
  return /[",\r\n]/.test(text) ? `"${text.replace(/"/g, '""')}"` : text;
}
