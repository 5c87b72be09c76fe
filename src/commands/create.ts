import { z } from 'zod';
import { findTemplates, insertDraftCampaign, type TemplateMatch } from '../db/operator.js';
import type { ISql } from 'postgres';
import { usageError } from '../errors.js';
import { makeContext, openDatabase, type GlobalOptions } from './context.js';
import {
  importCsv, importJson, importLine, importOptions, type ImportFlags, type ImportReport,
} from './import.js';
import { writeStdout } from './stdout.js';

/**
 * `wacamp create --template <name-or-id> --name <text> [--from-csv file]`: a draft campaign,
 * with its recipients when a CSV is given — in one transaction, so a CSV that cannot be read
 * leaves no empty campaign behind. Prints the id alone on stdout, for `id=$(wacamp create …)`.
 */
export interface CreateFlags extends GlobalOptions, Omit<ImportFlags, keyof GlobalOptions> {
  template: string; name: string; fromCsv?: string; language?: string;
}

type Tx = ISql<Record<string, never>>;

export async function createCommand(f: CreateFlags): Promise<number> {
  const ctx = makeContext(f);
  const name = f.name.trim();
  if (name === '') throw usageError('bad_name', '--name must not be empty');
  const csv = f.fromCsv ? importOptions(f.fromCsv, f) : null;
  const { db } = await openDatabase(ctx, f, { recover: false });
  try {
    const { id, template, report } = await db.begin(async (tx) => {
      const t = await pickTemplate(tx as unknown as Tx, f.template, f.language);
      const cid = await insertDraftCampaign(tx as unknown as Tx, t.id, name);
      const imported = csv ? await importCsv(tx as unknown as Tx, cid, csv) : null;
      return { id: cid, template: t, report: imported };
    });
    if (template.status !== 'APPROVED') {
      ctx.log.warn('template_not_approved', `template "${template.name}" is ` +
        `${template.status}; the campaign cannot be sent until it is APPROVED`);
    }
    if (ctx.json) {
      writeStdout(JSON.stringify({ id, name, status: 'draft', template_id: template.id,
        ...(report ? { import: importJson(report) } : {}) }) + '\n');
      return 0;
    }
    describe(ctx.log.info.bind(ctx.log), id, name, template, report);
    writeStdout(id + '\n');
    return 0;
  } finally {
    await db.end({ timeout: 5 });
  }
}

function describe(
  info: (event: string, msg: string) => void, id: string, name: string, t: TemplateMatch,
  report: ImportReport | null,
): void {
  info('created', `created draft campaign ${id} "${name}" with template "${t.name}" ` +
    `(${t.language}, ${t.status})`);
  if (report) info('import', importLine(id, report));
}

/** One template by id, or by name (and --language); a name that means several is refused. */
async function pickTemplate(
  tx: Tx, nameOrId: string, language: string | undefined,
): Promise<TemplateMatch> {
  const byId = z.guid().safeParse(nameOrId).success;
  const found = await findTemplates(tx, nameOrId, byId, language);
  if (found.length === 1) return found[0]!;
  const which = `template ${byId ? 'with id' : 'named'} "${nameOrId}"` +
    (language ? ` in ${language}` : '');
  if (found.length === 0) throw usageError('template_not_found', `no ${which}`);
  const list = found.slice(0, 5).map((t) =>
    `${t.id} (${t.language}, ${t.status}, account ${t.account ?? '?'})`).join('; ');
  throw usageError('template_ambiguous', `${found.length} templates match ${which}: ${list}; ` +
    'pass --language, or the template id');
}
