/**
 * A whole native lab (PostgreSQL per region, Kafka with one listener per region behind Toxiproxy)
 * for tests that cut broker links, plus the probes those tests share with twoRegions.ts.
 */
import { chmodSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { Lab } from '../../infra/lab/lab.js';
import type { Cluster, RegionUnderTest } from './twoRegions.js';

export interface LabCluster extends Cluster {
  readonly lab: Lab;
}

export async function startLabCluster(
  regions: readonly string[],
  env: Record<string, string>,
): Promise<LabCluster> {
  const root = mkdtempSync(join(tmpdir(), 'hothot-labtest-'));
  chmodSync(root, 0o755); // PostgreSQL runs as the postgres user when we are root: it must enter the directory
  const lab = await Lab.up({ root, regions, regionEnv: env, frontDoor: false, logLevel: 'info' });
  const byName: Record<string, RegionUnderTest> = {};
  for (const name of regions) {
    const process = lab.region(name);
    const db = new pg.Pool({ connectionString: process.info.databaseUrl, max: 3 });
    db.on('error', () => undefined);
    byName[name] = { name, process, db, url: process.url };
  }
  return {
    lab,
    prefix: 'hothot',
    regions: byName,
    async stop() {
      await Promise.allSettled(Object.values(byName).map((r) => r.db.end()));
      await lab.down();
      rmSync(root, { recursive: true, force: true });
    },
  };
}
