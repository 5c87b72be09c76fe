#!/usr/bin/env node
import { main } from '../dist/cli.js';

await main(process.argv);

// Every result is written and flushed by now. A socket to a database that went silent must not
// hold the process open past this point: a cron job's exit code is all there is.
setTimeout(() => process.exit(), 1500).unref();
