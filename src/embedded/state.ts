import { readFile, rename, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { z } from 'zod';
import { WacampError } from '../errors.js';

/**
 * What the next command needs to reach the server again. Written before initdb with
 * `initialised: false`, so a run killed halfway leaves a marker that the data folder is ours
 * and incomplete rather than a folder nobody can vouch for.
 */
const StateSchema = z.object({
  port: z.number().int().min(1).max(65_535),
  user: z.string().min(1),
  password: z.string().min(1),
  database: z.string().min(1),
  initialised: z.boolean(),
});

export type EmbeddedState = z.infer<typeof StateSchema>;

export function statePath(home: string): string {
  return path.join(home, 'embedded.json');
}

export async function readState(home: string): Promise<EmbeddedState | null> {
  const file = statePath(home);
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw new WacampError('embedded_state', `cannot read ${file}`, { cause: err });
  }

  try {
    return StateSchema.parse(JSON.parse(text));
  } catch (cause) {
    throw new WacampError(
      'embedded_state',
      `${file} is damaged; stop any server using ${path.join(home, 'pg')} and remove both`,
      { cause },
    );
  }
}

/** Replaces the file whole (write then rename), readable by its owner only: it holds a password. */
export async function writeState(home: string, state: EmbeddedState): Promise<void> {
  const file = statePath(home);
  const partial = `${file}.${process.pid}.tmp`;
  await writeFile(partial, JSON.stringify(state, null, 2) + '\n', { mode: 0o600 });
  await rename(partial, file);
}
