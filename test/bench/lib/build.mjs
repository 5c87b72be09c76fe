/**
 * Which build was measured: the commit, whether the work tree differed from it, and a digest
 * of dist/ taken at the start and at the end, so a rebuild during the run cannot go unnoticed.
 */
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { BUILD_ROOT, ROOT } from './processes.mjs';

export function distDigest() {
  const hash = createHash('sha256');
  const walk = (dir) => {
    for (const entry of readdirSync(dir, { withFileTypes: true }).sort((a, b) =>
      a.name.localeCompare(b.name))) {
      const full = path.join(dir, entry.name);
      if (entry.isDirectory()) walk(full);
      else if (entry.name.endsWith('.js')) hash.update(full).update(readFileSync(full));
    }
  };
  walk(path.join(BUILD_ROOT, 'dist'));
  return hash.digest('hex').slice(0, 12);
}

export function gitState() {
  const git = (...args) => {
    try {
      return execFileSync('git', args, { cwd: ROOT, encoding: 'utf8' }).trim();
    } catch {
      return null;
    }
  };
  const changed = git('status', '--porcelain', '--', 'src', 'sql');
  return { commit: git('rev-parse', '--short', 'HEAD'),
    uncommittedSourceFiles: changed === null ? null : changed.split('\n').filter(Boolean).length,
    measuredBuild: path.resolve(BUILD_ROOT) === path.resolve(ROOT) ? null : BUILD_ROOT };
}
