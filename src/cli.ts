import { Command, CommanderError, Option } from 'commander';
import { readFileSync } from 'node:fs';
import { EXIT, WacampError } from './errors.js';
import { stdoutDrained, writeStdout } from './commands/stdout.js';

/**
 * The command layer: declares commands and flags, hands each to one function, and turns what
 * comes back into an exit code. Command modules load lazily so `wacamp --help` stays fast.
 */
type Action = (...args: never[]) => Promise<number>;

const VERSION = (JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as
  { version: string }).version;

let jsonErrors = false;

function globals(cmd: Command): Command {
  return cmd
    .option('--json', 'print one JSON document on stdout (logs stay on stderr)')
    .addOption(new Option('--log-format <format>', 'stderr log format (default: pretty on a ' +
      'terminal, plain timestamped lines otherwise)').choices(['plain', 'json', 'pretty']))
    .option('--quiet', 'only warnings, errors and the result')
    .option('--verbose', 'debug logs')
    .option('--embedded', 'use the embedded PostgreSQL when DATABASE_URL is unset, even off a ' +
      'terminal')
    .option('--database-url <url>', 'PostgreSQL URL (default: $DATABASE_URL)');
}

/** Runs an action with the options object commander built, merged with its arguments. */
function run<T extends unknown[]>(load: () => Promise<(...args: T) => Promise<number>>) {
  return async (...args: unknown[]) => {
    const cmd = args[args.length - 1] as Command;
    const opts = cmd.opts();
    jsonErrors = Boolean(opts.json);
    const fn = await load();
    const positional = args.slice(0, -2);
    process.exitCode = await fn(...([...positional, opts] as T));
  };
}

function sendFlags(cmd: Command): Command {
  return cmd
    .option('--workers <n>', 'requests in flight at most', '10')
    .option('--rate <n>', 'requests started per second at most, or "unlimited"', '80')
    .option('--drain-timeout <duration>', 'on a signal, wait this long for requests in flight ' +
      'before aborting them (500ms, 30s, 2m; bare number = seconds)', '30s')
    .option('--lease <duration>', 'a run that misses heartbeats this long is dead', '30s')
    .option('--max-attempts <n>', 'attempts per recipient for transient errors', '4')
    .option('--request-timeout <duration>', 'per request; a timeout is recorded as unknown',
      '20s')
    .option('--max-error-rate <share>', 'pause when more than this share of the last 200 ' +
      'sends failed with one code (0.5 or 50%)', '50%')
    .option('--max-throttle <duration>', 'pause after being throttled this long without relief',
      '10m')
    .option('--default-country <ISO>', 'country for national-format phones (e.g. US, GB)')
    .option('--strict', 'exit 4 if any recipient ended failed or unknown')
    .option('--api-url <url>', 'Cloud API base URL (default: $WHATSAPP_API_URL or ' +
      'https://graph.facebook.com)')
    .option('--api-version <v>', 'Graph API version (default: $WHATSAPP_API_VERSION or v23.0)')
    .option('--metrics-file <file>', 'at the end, write Prometheus text-format metrics here ' +
      '(for node_exporter\'s textfile collector)')
    .addOption(new Option('--trace-starts <file>', 'write request start times (benchmark)')
      .hideHelp());
}

function importFlags(cmd: Command): Command {
  return cmd
    .option('--phone-column <name>', 'the CSV column holding phone numbers', 'phone')
    .option('--body-columns <a,b,...>', 'columns that fill the body\'s {{1}}, {{2}}, ... in ' +
      'this order (default: every other column is a named variable)')
    .option('--default-country <ISO>', 'country for national-format phones (e.g. US, GB)')
    .option('--rejects <file>', 'where rejected rows go, with reasons (default: ' +
      '<file>.rejected.csv beside the CSV)')
    .option('--delimiter <char>', 'field separator', ',');
}

export function program(): Command {
  const p = new Command('wacamp')
    .description('Send WhatsApp template-message campaigns out of PostgreSQL.')
    .version(VERSION, '-V, --version')
    .showHelpAfterError('(run wacamp --help for usage)')
    .exitOverride()
    .configureOutput({ writeErr: (s) => process.stderr.write(s) });

  globals(p.command('migrate')).description('apply the SQL migrations in sql/')
    .action(run(async () => (await import('./commands/migrate.js')).migrateCommand));

  sendFlags(globals(p.command('send <campaign-id>')))
    .description('send a campaign\'s pending recipients')
    .option('--dry-run', 'render and validate everything; change nothing')
    .option('--now', 'send a scheduled campaign before its time')
    .option('--join', 'share the work with a live run on the same campaign')
    .action(run(async () => (await import('./commands/send.js')).sendCommand));

  sendFlags(globals(p.command('resume <campaign-id>')))
    .description('the same as send: resume a paused or interrupted campaign')
    .option('--now', 'resume before a Meta pause window ends')
    .option('--join', 'share the work with a live run on the same campaign')
    .action(run(async () => (await import('./commands/send.js')).sendCommand));

  globals(p.command('status <campaign-id>')).description('campaign status, counts and runs')
    .action(run(async () => (await import('./commands/status.js')).statusCommand));

  globals(p.command('reset <campaign-id>'))
    .description('make a stuck or interrupted campaign sendable again')
    .option('--failed', 're-queue failed recipients')
    .option('--unknown', 're-queue unknown recipients (may message people twice; needs --yes)')
    .option('--include-sent', 're-queue sent recipients (messages them twice; needs --yes)')
    .option('--yes', 'confirm a re-queue that may message people twice')
    .option('--force', 'fence out a live run first (its lease is revoked)')
    .option('--dry-run', 'print the changes without making them')
    .action(run(async () => (await import('./commands/reset.js')).resetCommand));

  globals(p.command('schedule <campaign-id>'))
    .description('schedule a campaign; run-due sends it once its time has come')
    .requiredOption('--at <time>', 'ISO 8601 with an offset (2030-03-01T09:30-08:00), or a ' +
      'local time with --tz')
    .option('--tz <Area/City>', 'IANA time zone of a local --at time (e.g. America/Los_Angeles)')
    .option('--now', 'accept a time in the past: due at once')
    .action(run(async () => (await import('./commands/schedule.js')).scheduleCommand));

  sendFlags(globals(p.command('run-due')))
    .description('send every due campaign, for cron (scheduled ones whose time has come, and ' +
      'those an earlier run-due left at its time limit or on a signal)')
    .option('--max-duration <duration>', 'stop like Ctrl-C after this long, leaving the ' +
      'campaigns for the next run-due (e.g. 55m)')
    .option('--campaigns <n>', 'campaigns sent at once, each with --workers', '1')
    .action(run(async () => (await import('./commands/run-due.js')).runDueCommand));

  globals(p.command('list')).description('campaigns with status, schedule, counts and last run')
    .option('--status <status>', 'only campaigns with this status')
    .option('--limit <n>', 'at most this many, newest first', '50')
    .action(run(async () => (await import('./commands/list.js')).listCommand));

  globals(p.command('pause <campaign-id>'))
    .description('pause a campaign: a run in progress anywhere drains and stops')
    .option('--reason <text>', 'stored with the status')
    .action(run(async () => (await import('./commands/pause.js')).pauseCommand));

  globals(p.command('cancel <campaign-id>'))
    .description('cancel a campaign: a run in progress stops; the rest is never sent')
    .option('--reason <text>', 'stored with the status')
    .action(run(async () => (await import('./commands/pause.js')).cancelCommand));

  importFlags(globals(p.command('import <campaign-id> <file>')))
    .description('add recipients from a CSV of any size (normalised, de-duplicated)')
    .action(run(async () => (await import('./commands/import.js')).importCommand));

  importFlags(globals(p.command('create')))
    .description('create a draft campaign and print its id')
    .requiredOption('--template <name-or-id>', 'the template to send')
    .requiredOption('--name <text>', 'the campaign\'s name')
    .option('--language <code>', 'the template\'s language, when its name has several')
    .option('--from-csv <file>', 'import recipients from this CSV (see wacamp import)')
    .action(run(async () => (await import('./commands/create.js')).createCommand));

  globals(p.command('check')).description('check the set-up: database, migrations, tokens, ' +
    'templates of scheduled campaigns; exit 1 if any fails')
    .option('--api-url <url>', 'Cloud API base URL (default: $WHATSAPP_API_URL or ' +
      'https://graph.facebook.com)')
    .option('--api-version <v>', 'Graph API version (default: $WHATSAPP_API_VERSION or v23.0)')
    .action(run(async () => (await import('./commands/check.js')).checkCommand));

  globals(p.command('sandbox')).description('a local fake of the Cloud API messages endpoint')
    .option('--port <n>', 'port on 127.0.0.1 (default: a free one)', '0')
    .option('--latency <ms>', 'answer delay in ms, or a range like 80-250', '0')
    .option('--scenario <file>', 'JSON file of injected faults (see README)')
    .option('--token <token>', 'bearer token to accept (default: sandbox-token; "any" for any)')
    .option('--log <file>', 'append every accepted message to this NDJSON file')
    .action(run(async () => (await import('./commands/sandbox.js')).sandboxCommand));

  globals(p.command('demo')).description('seed a demo campaign in the embedded PostgreSQL and ' +
    'send it to the built-in sandbox')
    .option('--recipients <n>', 'how many recipients to seed', '3000')
    .option('--rate <n>', 'requests per second', '200')
    .option('--workers <n>', 'requests in flight', '20')
    .action(run(async () => (await import('./commands/demo.js')).demoCommand));

  const db = p.command('db').description('the embedded PostgreSQL server');
  for (const [name, text] of [['start', 'start it (or find it running)'],
    ['stop', 'stop it'], ['status', 'say whether it runs, and where']] as const) {
    globals(db.command(name)).description(text)
      .action(run(async () => (await import('./commands/db.js')).dbCommand(name)));
  }
  return p;
}

export async function main(argv: string[]): Promise<void> {
  // Known before parsing, so a flag commander rejects still answers in JSON.
  jsonErrors = argv.includes('--json');
  try {
    await program().parseAsync(argv);
  } catch (err) {
    process.exitCode = fail(err);
  }
  await stdoutDrained();
}

/** The only place errors become exit codes and one-line messages. */
function fail(err: unknown): number {
  if (err instanceof CommanderError) {
    if (err.exitCode === 0 || err.code === 'commander.helpDisplayed' ||
      err.code === 'commander.version') return EXIT.ok;
    // commander has already printed its message on stderr.
    if (jsonErrors) {
      writeStdout(JSON.stringify({ error: { code: err.code, message:
        err.message.replace(/^error: /, '') } }) + '\n');
    }
    return EXIT.usage;
  }
  const known = err instanceof WacampError;
  const code = known ? err.code : 'internal';
  const message = known ? err.message : `unexpected error: ${(err as Error)?.stack ?? err}`;
  if (jsonErrors) writeStdout(JSON.stringify({ error: { code, message } }) + '\n');
  process.stderr.write(`wacamp: ${message}\n`);
  return known ? err.exitCode : EXIT.error;
}
