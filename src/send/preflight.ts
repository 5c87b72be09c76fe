import type { CountryCode } from 'libphonenumber-js';
import type { Db } from '../db/connect.js';
import {
  applyPreflight, pendingPage, writePreflight, type PreflightWrite,
} from '../db/recipients.js';
import { usageError } from '../errors.js';
import { normalizePhone } from '../phone.js';
import { describeParams, type TemplateSpec } from '../template/definition.js';
import { renderComponents } from '../template/render.js';

export interface PreflightReport {
  checked: number;
  valid: number;
  invalidPhones: number;
  invalidVariables: number;
  /** Rows settled by applyPreflight: failed locally, skipped as duplicates. */
  failed: number;
  skipped: number;
}

const PAGE = 2000;

/**
 * Checks every pending row before anything is sent: normalises phones (stored beside the
 * original) and renders variables against the template. Nothing about a row's status changes
 * here; if every row disagrees with the template in the same way, the run stops with one error
 * and nothing is sent. `dryRun` writes nothing at all.
 */
export async function checkRecipients(
  db: Db, campaignId: string, spec: TemplateSpec,
  o: { defaultCountry?: CountryCode; dryRun: boolean },
): Promise<PreflightReport> {
  const report: PreflightReport = {
    checked: 0, valid: 0, invalidPhones: 0, invalidVariables: 0, failed: 0, skipped: 0,
  };
  const shapes = new Map<string, string>();
  let after = '0';

  for (;;) {
    const page = await pendingPage(db, campaignId, after, PAGE);
    if (page.length === 0) break;
    after = page[page.length - 1]!.id;
    const writes: PreflightWrite[] = [];

    for (const row of page) {
      report.checked++;
      const phone = row.phoneE164 ? { ok: true as const, e164: row.phoneE164 }
        : normalizePhone(row.phone ?? '', o.defaultCountry);
      const render = renderComponents(spec, row.variables);
      let error: string | null = null;
      let message: string | null = null;
      if (!render.ok) {
        report.invalidVariables++;
        if (shapes.size < 2) shapes.set(render.shape, render.message);
        error = render.code;
        message = render.message;
      } else if (!phone.ok) {
        report.invalidPhones++;
        error = phone.code;
        message = phone.reason;
      } else {
        report.valid++;
      }
      const e164 = phone.ok ? phone.e164 : null;
      if (e164 !== row.phoneE164 || error !== row.preflightError) {
        writes.push({ id: row.id, phoneE164: e164, error, message });
      }
    }
    if (!o.dryRun) await writePreflight(db, writes);
  }

  const [only] = shapes.values();
  if (report.checked > 0 && report.invalidVariables === report.checked && shapes.size === 1) {
    throw usageError('variables_mismatch',
      `every pending recipient disagrees with template "${spec.name}": ${only}; ` +
      `the template expects ${describeParams(spec)} — fix the data or the template`);
  }
  return report;
}

/** Fails invalid rows and skips duplicates, in SQL, before the first claim. */
export async function settlePreflight(
  db: Db, campaignId: string, report: PreflightReport,
): Promise<PreflightReport> {
  const settled = await applyPreflight(db, campaignId);
  return { ...report, failed: settled.failed, skipped: settled.skipped };
}
