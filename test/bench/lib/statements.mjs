/**
 * Case 3's counter: what the server executed in one database, from pg_stat_statements (reset
 * before a run, read after). BEGIN and COMMIT are utility statements and are counted too.
 */
import { connect } from '../../../dist/db/connect.js';

const OWN = '%pg_stat_statements%';

export async function resetStatements(url) {
  const db = connect(url, { max: 1 });
  try {
    await db`SELECT pg_stat_statements_reset()`;
  } finally {
    await db.end();
  }
}

/** Every statement run in this database since the reset, most called first. */
export async function readStatements(url) {
  const db = connect(url, { max: 1 });
  try {
    const rows = await db`
      SELECT regexp_replace(query, '\\s+', ' ', 'g') AS query, sum(calls)::int AS calls
        FROM pg_stat_statements
       WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())
         AND query NOT ILIKE ${OWN}
       GROUP BY 1 ORDER BY 2 DESC`;
    const total = rows.reduce((sum, r) => sum + r.calls, 0);
    return { total, top: rows.slice(0, 8).map((r) => ({ calls: r.calls,
      query: r.query.length > 90 ? `${r.query.slice(0, 87)}...` : r.query })) };
  } finally {
    await db.end();
  }
}
