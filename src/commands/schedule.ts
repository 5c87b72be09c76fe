import { loadCampaign } from '../db/campaigns.js';
import { scheduleCampaign, SCHEDULABLE } from '../db/schedule.js';
import { EXIT, WacampError, usageError } from '../errors.js';
import { makeContext, openDatabase, type GlobalOptions } from './context.js';
import { campaignId } from './send.js';
import { writeStdout } from './stdout.js';

/**
 * `wacamp schedule <id> --at <time> [--tz Area/City] [--now]`.
 *
 * The zone arithmetic uses only Intl (the IANA database Node ships), never the machine's own
 * TZ: a campaign scheduled for 09:30 at UTC−08:00 is stored as 17:30 UTC wherever this runs.
 */
export interface ScheduleFlags extends GlobalOptions { at: string; tz?: string; now?: boolean }

export interface ResolvedTime {
  instant: Date;
  /** UTC offset in effect at that instant, e.g. "-08:00". */
  offset: string;
  /** Set when a daylight-saving change made the local time repeat. */
  note: string | null;
}

const MINUTE = 60_000;
const DAY = 24 * 60 * MINUTE;
// Date, time (seconds and milliseconds optional), then an optional offset: Z, ±hh, ±hhmm, ±hh:mm.
const ISO = new RegExp('^(\\d{4})-(\\d{2})-(\\d{2})[T ](\\d{2}):(\\d{2})' +
  '(?::(\\d{2})(?:\\.(\\d{1,3})\\d*)?)?\\s*(Z|[+-]\\d{2}(?::?\\d{2})?)?$', 'i');

/** Parses `--at` (with `--tz` when it carries no offset). Pure: no clock, no machine zone. */
export function resolveTime(text: string, tz: string | undefined): ResolvedTime {
  const m = ISO.exec(text.trim());
  if (!m) {
    throw usageError('bad_time', `--at: "${text}" is not a time like 2030-03-01T09:30:00-08:00, ` +
      'or 2030-03-01 09:30 with --tz Area/City');
  }
  const [y, mo, d, h, mi, s] = [1, 2, 3, 4, 5, 6].map((i) => Number(m[i] ?? 0)) as number[];
  const ms = Number((m[7] ?? '').padEnd(3, '0'));
  if (!validWallTime(y!, mo!, d!, h!, mi!, s!)) {
    throw usageError('bad_time', `--at: "${text}" is not a real date and time`);
  }
  const wall = Date.UTC(y!, mo! - 1, d!, h!, mi!, s!);
  const zone = tz === undefined ? undefined : zoneFormatter(tz);

  if (m[8] !== undefined) {
    const offsetMs = parseOffset(m[8]);
    const instant = new Date(wall - offsetMs + ms);
    if (zone && offsetAt(zone, instant.getTime()) !== offsetMs) {
      throw usageError('offset_mismatch', `--at: ${text} says UTC${formatOffset(offsetMs)} but ` +
        `${tz} is at UTC${formatOffset(offsetAt(zone, instant.getTime()))} then; drop one of them`);
    }
    return { instant, offset: formatOffset(offsetMs), note: null };
  }
  if (!zone) {
    throw usageError('no_zone', `--at: "${text}" has no UTC offset; add one (e.g. ` +
      `${text.trim()}-08:00 or ${text.trim()}Z) or name the zone with --tz Area/City`);
  }
  return resolveLocal(zone, tz!, wall, ms, text.trim());
}

/**
 * The instant(s) at which the zone's clocks show `wall`. An offset in effect a day before or
 * after is the only other candidate (no zone changes twice within two days), so at most two
 * readings exist: none means a skipped hour, two a repeated one.
 */
function resolveLocal(
  zone: Intl.DateTimeFormat, tz: string, wall: number, ms: number, text: string,
): ResolvedTime {
  const offsets = [...new Set([offsetAt(zone, wall - DAY), offsetAt(zone, wall + DAY)])];
  const readings = offsets
    .map((offset) => wall - offset)
    .filter((instant) => wallClockAt(zone, instant) === wall)
    .sort((a, b) => a - b);
  if (readings.length === 0) {
    const [before, after] = [offsetAt(zone, wall - DAY), offsetAt(zone, wall + DAY)];
    throw usageError('nonexistent_time', `--at: ${text} does not exist in ${tz}: the clocks ` +
      `skip it when they change from UTC${formatOffset(before)} to UTC${formatOffset(after)} ` +
      '(daylight saving); pick a time outside the skipped hour');
  }
  const instant = readings[0]!;
  const offset = formatOffset(wall - instant);
  const note = readings.length > 1
    ? `${text} happens twice in ${tz} (clocks go back for daylight saving); using the earlier ` +
      `one, UTC${offset}, not the later UTC${formatOffset(wall - readings[1]!)}`
    : null;
  return { instant: new Date(instant + ms), offset, note };
}

function zoneFormatter(tz: string): Intl.DateTimeFormat {
  try {
    return new Intl.DateTimeFormat('en-US', {
      timeZone: tz, hourCycle: 'h23', year: 'numeric', month: 'numeric', day: 'numeric',
      hour: 'numeric', minute: 'numeric', second: 'numeric',
    });
  } catch (err) {
    throw usageError('bad_tz', `--tz: "${tz}" is not a time zone; use an IANA name such as ` +
      'America/Los_Angeles or Europe/Berlin', err);
  }
}

/** The zone's wall clock at `instant`, as milliseconds of a UTC date with the same fields. */
function wallClockAt(zone: Intl.DateTimeFormat, instant: number): number {
  const f: Record<string, number> = {};
  for (const p of zone.formatToParts(new Date(instant))) {
    if (p.type !== 'literal') f[p.type] = Number(p.value);
  }
  return Date.UTC(f.year!, f.month! - 1, f.day!, f.hour!, f.minute!, f.second!);
}

function offsetAt(zone: Intl.DateTimeFormat, instant: number): number {
  const whole = instant - (((instant % 1000) + 1000) % 1000);
  return wallClockAt(zone, whole) - whole;
}

function parseOffset(text: string): number {
  if (text.toUpperCase() === 'Z') return 0;
  const m = /^([+-])(\d{2}):?(\d{2})?$/.exec(text)!;
  const minutes = Number(m[2]) * 60 + Number(m[3] ?? 0);
  if (Number(m[2]) > 18 || Number(m[3] ?? 0) > 59) {
    throw usageError('bad_time', `--at: offset ${text} is out of range`);
  }
  return (m[1] === '-' ? -1 : 1) * minutes * MINUTE;
}

export function formatOffset(ms: number): string {
  const minutes = Math.round(Math.abs(ms) / MINUTE);
  const hh = String(Math.floor(minutes / 60)).padStart(2, '0');
  return `${ms < 0 ? '-' : '+'}${hh}:${String(minutes % 60).padStart(2, '0')}`;
}

function validWallTime(
  y: number, mo: number, d: number, h: number, mi: number, s: number,
): boolean {
  if (mo < 1 || mo > 12 || h > 23 || mi > 59 || s > 59 || d < 1) return false;
  return d <= new Date(Date.UTC(y, mo, 0)).getUTCDate();
}

/** Refuses a time already past unless `--now` says to send it on run-due's next tick. */
export function checkNotPast(t: ResolvedTime, nowMs: number, allowPast: boolean): void {
  if (allowPast || t.instant.getTime() >= nowMs) return;
  throw usageError('time_in_past', `--at: ${t.instant.toISOString()} is in the past (now is ` +
    `${new Date(nowMs).toISOString()}); pass --now to make it due at once`);
}

export async function scheduleCommand(id: string, f: ScheduleFlags): Promise<number> {
  const ctx = makeContext(f);
  const cid = campaignId(id);
  const time = resolveTime(f.at, f.tz);
  checkNotPast(time, Date.now(), Boolean(f.now));
  if (time.note) ctx.log.warn('dst_overlap', time.note);

  const { db } = await openDatabase(ctx, f, { recover: true });
  try {
    const result = await scheduleCampaign(db, cid, time.instant);
    if (!result.scheduled) refuse(cid, result.status);
    const campaign = await loadCampaign(db, cid);
    const template = campaign?.template;
    if (template && template.status !== 'APPROVED') {
      ctx.log.warn('template_not_approved', `template "${template.name}" is ${template.status}; ` +
        'run-due will refuse the campaign until it is APPROVED');
    }
    const when = time.instant.toISOString();
    if (ctx.json) {
      writeStdout(JSON.stringify({ campaign_id: cid, status: 'scheduled', scheduled_at: when,
        offset: time.offset, time_zone: f.tz ?? null, note: time.note }) + '\n');
    } else {
      writeStdout(`campaign ${cid} scheduled for ${when} (UTC${time.offset}` +
        `${f.tz ? `, ${f.tz}` : ''})${time.note ? `; ${time.note}` : ''}\n`);
    }
    return EXIT.ok;
  } finally {
    await db.end({ timeout: 5 });
  }
}

function refuse(cid: string, status: string | null): never {
  if (status === null) throw usageError('campaign_not_found', `campaign ${cid} does not exist`);
  if (status === 'active') {
    throw new WacampError('live_run', `campaign ${cid} is being sent (active); pause it first ` +
      `(wacamp pause ${cid})`, { exitCode: EXIT.liveRun });
  }
  throw usageError('campaign_status', `campaign ${cid} is ${status}; only a campaign that is ` +
    `${SCHEDULABLE.join(', ')} can be scheduled`);
}
