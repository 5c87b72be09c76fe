-- wacamp's own state beside the contract tables.

-- A run is one `wacamp send` process working on one campaign. Its lease is renewed by heartbeat;
-- every write it makes is fenced on the run still being live (see src/db/recipients.ts).
CREATE TABLE IF NOT EXISTS wacamp_runs (
  id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  campaign_id  uuid NOT NULL REFERENCES campaigns (id),
  host         text NOT NULL,
  pid          int NOT NULL,
  started_at   timestamptz NOT NULL DEFAULT now(),
  heartbeat_at timestamptz NOT NULL DEFAULT now(),
  lease        interval NOT NULL,
  options      jsonb NOT NULL DEFAULT '{}',
  run_due      boolean NOT NULL DEFAULT false,
  -- null while running; then completed | paused | failed | interrupted | crashed | fenced
  outcome      text,
  reason       text,
  counts       jsonb,
  ended_at     timestamptz
);
CREATE INDEX IF NOT EXISTS wacamp_runs_live ON wacamp_runs (campaign_id) WHERE ended_at IS NULL;

-- Why a campaign stopped, so `status`, `list` and `run-due` can tell an operator's pause from a
-- time limit or a Meta-imposed pause.
ALTER TABLE campaigns ADD COLUMN IF NOT EXISTS pause_reason text;
ALTER TABLE campaigns ADD COLUMN IF NOT EXISTS status_detail text;
ALTER TABLE campaigns ADD COLUMN IF NOT EXISTS paused_until timestamptz;
ALTER TABLE campaigns ADD COLUMN IF NOT EXISTS run_due boolean NOT NULL DEFAULT false;

-- Recipient states beyond the contract's: `claimed` (taken by a live run, not yet requested) and
-- `sending` (committed before its request leaves). `run_id` says which run owns such a row.
ALTER TABLE campaign_recipients ADD COLUMN IF NOT EXISTS run_id bigint;
ALTER TABLE campaign_recipients ADD COLUMN IF NOT EXISTS phone_e164 text;
ALTER TABLE campaign_recipients ADD COLUMN IF NOT EXISTS message_status text;
ALTER TABLE campaign_recipients ADD COLUMN IF NOT EXISTS preflight_error text;

-- Claims walk pending rows in id order; a partial index keeps that walk proportional to what is
-- left, not to the campaign's size.
CREATE INDEX IF NOT EXISTS campaign_recipients_pending
  ON campaign_recipients (campaign_id, id) WHERE status = 'pending';
-- Owned rows are found by run during recovery and drain.
CREATE INDEX IF NOT EXISTS campaign_recipients_owned
  ON campaign_recipients (run_id) WHERE status IN ('claimed', 'sending');
-- Duplicate detection compares normalised phones within a campaign.
CREATE INDEX IF NOT EXISTS campaign_recipients_phone
  ON campaign_recipients (campaign_id, phone_e164);
CREATE INDEX IF NOT EXISTS campaign_recipients_campaign_status
  ON campaign_recipients (campaign_id, status);

-- The throughput limit belongs to the sending number, not the process (Meta counts per number).
ALTER TABLE wa_accounts ADD COLUMN IF NOT EXISTS max_rate numeric;

-- One GCRA row per sending number: runs reserve small chunks of start times from it, so every
-- run on one number, on any host, together keeps under max_rate. `throttle_factor` is the shared
-- cut after Meta answers with a throughput error.
CREATE TABLE IF NOT EXISTS wacamp_rate_limits (
  phone_number_id text PRIMARY KEY,
  tat             timestamptz NOT NULL DEFAULT now(),
  throttle_factor double precision NOT NULL DEFAULT 1,
  throttled_at    timestamptz,
  throttle_until  timestamptz
);
