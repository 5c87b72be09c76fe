/**
 * Waits for `work` at most `ms`; then gives up with `fallback`. For best-effort calls made while
 * a run is ending (a last progress frame, UNLISTEN): with the database unreachable they must not
 * keep a run from exiting within its lease.
 */
export async function within<T>(work: Promise<T>, ms: number, fallback: T): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<T>((resolve) => { timer = setTimeout(() => resolve(fallback), ms); });
  try {
    return await Promise.race([work.catch(() => fallback), late]);
  } finally {
    clearTimeout(timer);
  }
}
