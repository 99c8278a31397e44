/**
 * A running lab as another process sees it (lab.json), for the membership commands: checks that it
 * can be changed, updates lab.json atomically with the latest copy, and reads a region's status.
 */
import { isPidRunning } from '../processes.js';
import { ensureAdminKey } from '../labClientKeys.js';
import { labStatePath, readLabState, writeLabState, type LabState } from '../labState.js';

/** The lab in `root`, ready, with its broker, proxies and credentials: or an error saying what to do. */
export function readRunningLab(root: string): LabState {
  const state = readLabState(root);
  if (state === undefined)
    throw new Error(
      `no lab in ${root} (no ${labStatePath(root)}): start one with \`hothot lab up --detach\``,
    );
  if (state.status !== 'ready')
    throw new Error(`the lab in ${root} is still starting: wait for \`hothot lab status\` to say ready`);
  if (state.kafka === undefined || state.toxiproxy === undefined || state.secretsDir === undefined)
    throw new Error(
      `the lab in ${root} has no secured Kafka broker or broker-link proxies recorded: restart it`,
    );
  if (state.ownerPid !== undefined && state.ownerPid !== process.pid && isPidRunning(state.ownerPid))
    throw new Error(
      `the lab in ${root} runs in the foreground of pid ${state.ownerPid}, which would not stop what this ` +
        'command starts: start it with `hothot lab up --detach` to change its regions',
    );
  return state;
}

/** Apply `change` to the latest lab.json and write it back (other commands may have written it meanwhile). */
export function updateLabState(root: string, change: (state: LabState) => void): LabState {
  const state = readLabState(root);
  if (state === undefined) throw new Error(`lab.json disappeared from ${root}: was the lab stopped?`);
  change(state);
  writeLabState(state);
  return state;
}

/** What the membership commands read of `/v1/status`. */
export interface LabRegionStatus {
  readonly region: string;
  readonly peers: readonly {
    readonly region: string;
    readonly state: string;
    readonly heartbeatAgeMs?: number | null;
  }[];
  readonly applier?: { readonly lagMessages?: number | null } | null;
  readonly replication?: { readonly complete: boolean; readonly lostEvents: number };
}

/** `/v1/status` of a lab region, as the lab's admin key. */
export async function fetchLabRegionStatus(root: string, url: string): Promise<LabRegionStatus> {
  const res = await fetch(`${url}/v1/status`, {
    headers: { authorization: `Bearer ${ensureAdminKey(root).token}` },
    signal: AbortSignal.timeout(5_000),
  });
  if (!res.ok) throw new Error(`${url}/v1/status answered ${res.status}`);
  return (await res.json()) as LabRegionStatus;
}
