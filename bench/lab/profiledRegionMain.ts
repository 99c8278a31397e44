/**
 * Entry point of a profiled region process (bench `--only profile`): the ordinary composition root
 * (services/region/main.ts) with the V8 CPU profiler — the one `--cpu-prof` uses — started on
 * SIGUSR2 (so start-up and warm-up stay out of the profile) and written on exit to
 * `$BENCH_CPU_PROFILE_DIR/region-<pid>.cpuprofile`. (`--cpu-prof` cannot be passed through
 * NODE_OPTIONS, and RegionProcess owns the node command line.)
 */
import { writeFileSync } from 'node:fs';
import { Session } from 'node:inspector';
import { join } from 'node:path';

const dir = process.env.BENCH_CPU_PROFILE_DIR;
if (dir === undefined || dir === '') throw new Error('BENCH_CPU_PROFILE_DIR is not set: set it to the directory for the profile');

const session = new Session();
session.connect();
session.post('Profiler.enable');
session.post('Profiler.setSamplingInterval', { interval: 500 });
let started = false;
process.on('SIGUSR2', () => {
  if (started) return;
  started = true;
  session.post('Profiler.start');
});
process.on('exit', () => {
  if (!started) return;
  // An in-process inspector session answers synchronously, so this completes inside 'exit'.
  session.post('Profiler.stop', (err, result) => {
    if (!err) writeFileSync(join(dir, `region-${process.pid}.cpuprofile`), JSON.stringify(result.profile));
  });
});

await import('../../services/region/main.js');
