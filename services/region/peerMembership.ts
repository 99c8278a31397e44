/**
 * The live list of this region's peers and of every region's event public keys. Both come from files
 * (PEER_REGIONS_FILE, EVENT_PUBLIC_KEYS_FILE) that are re-read on SIGHUP and whenever their size or
 * modification time changes (every MEMBERSHIP_RELOAD_MS): a region joins or leaves the mesh without
 * a restart of the others (docs/operations.md, "Adding and removing a region").
 *
 * A reload is all or nothing: a file that cannot be read or parsed, or a peer without a public key
 * while events are verified, leaves the membership as it was and is logged as an error (the region
 * keeps running on what it had). A good reload replaces the keyring's entries in place (the applier
 * verifies with the same map) and emits `changed` with the peers added and removed, which the root
 * turns into a new topic subscription.
 */
import { EventEmitter } from 'node:events';
import { readFileSync, statSync } from 'node:fs';
import { parsePeerRegions } from '../../shared/config/loadConfig.js';
import type { Logger } from '../../shared/logging/logger.js';
import { parsePublicKeys } from '../../shared/security/eventKeys.js';
import type { PublicKeyring } from '../../shared/security/eventSignature.js';

export interface MembershipChange {
  readonly peers: readonly string[];
  readonly added: readonly string[];
  readonly removed: readonly string[];
}

export interface PeerMembershipEvents {
  changed: [change: MembershipChange];
}

export interface PeerMembershipOptions {
  readonly region: string;
  /** The peers at start (from the configuration). */
  readonly peers: readonly string[];
  /** PEER_REGIONS_FILE, or undefined: the peers stay as configured. */
  readonly peersFile?: string;
  /** EVENT_PUBLIC_KEYS_FILE and the keyring loaded from it at start, when events are verified. */
  readonly publicKeys?: { readonly file: string; readonly keyring: PublicKeyring };
  /** Check the files for changes this often; 0: only on {@link PeerMembership.reload}. */
  readonly pollMs: number;
  readonly log: Logger;
}

/** What a reload did. */
export type ReloadOutcome =
  | { readonly ok: true; readonly change: MembershipChange | undefined }
  | { readonly ok: false; readonly problem: string };

export class PeerMembership extends EventEmitter<PeerMembershipEvents> {
  private current: readonly string[];
  private timer: NodeJS.Timeout | undefined;
  /** `size:mtime` of each watched file at the last reload. */
  private seen = '';
  private reloading: Promise<ReloadOutcome> | undefined;

  constructor(private readonly options: PeerMembershipOptions) {
    super();
    this.current = Object.freeze([...options.peers]);
    this.seen = this.fingerprint();
  }

  /** The regions whose changes this region applies, now. */
  peers(): readonly string[] {
    return this.current;
  }

  start(): void {
    if (this.options.pollMs <= 0 || this.files().length === 0) return;
    this.timer = setInterval(() => {
      if (this.fingerprint() !== this.seen) void this.reload('file changed');
    }, this.options.pollMs);
    this.timer.unref();
  }

  stop(): void {
    clearInterval(this.timer);
    this.timer = undefined;
  }

  /** Re-read the files now (SIGHUP, a changed file, a test); one reload at a time. */
  reload(reason: string): Promise<ReloadOutcome> {
    this.reloading ??= Promise.resolve()
      .then(() => this.reloadNow(reason))
      .finally(() => {
        this.reloading = undefined;
      });
    return this.reloading;
  }

  private reloadNow(reason: string): ReloadOutcome {
    const { region, peersFile, publicKeys, log } = this.options;
    this.seen = this.fingerprint();
    let peers = this.current;
    let keyring: PublicKeyring | undefined;
    try {
      if (peersFile !== undefined) peers = parsePeerRegions(readFileSync(peersFile, 'utf8'), region);
      if (publicKeys !== undefined) {
        keyring = parsePublicKeys(readFileSync(publicKeys.file, 'utf8'));
        const missing = [region, ...peers].filter((r) => (keyring!.get(r)?.size ?? 0) === 0);
        if (missing.length > 0)
          throw new Error(`${publicKeys.file} has no public key of ${missing.join(', ')}`);
      }
    } catch (err) {
      const problem = err instanceof Error ? err.message : String(err);
      log.error(
        { reason, problem, peers: this.current },
        'membership reload refused: peers and public keys stay as they were',
      );
      return { ok: false, problem };
    }
    if (publicKeys !== undefined && keyring !== undefined) {
      // In place: the applier verifies with this very map.
      const ring = publicKeys.keyring as Map<string, ReadonlyMap<string, unknown>>;
      ring.clear();
      for (const [r, keys] of keyring) ring.set(r, keys);
    }
    const added = peers.filter((p) => !this.current.includes(p));
    const removed = this.current.filter((p) => !peers.includes(p));
    if (added.length === 0 && removed.length === 0) {
      log.info({ reason, peers }, 'membership reloaded: peers unchanged');
      return { ok: true, change: undefined };
    }
    this.current = Object.freeze([...peers]);
    const change = { peers: this.current, added, removed };
    log.info({ reason, ...change }, 'membership changed');
    this.emit('changed', change);
    return { ok: true, change };
  }

  private files(): string[] {
    const { peersFile, publicKeys } = this.options;
    return [peersFile, publicKeys?.file].filter((f): f is string => f !== undefined);
  }

  private fingerprint(): string {
    return this.files()
      .map((f) => {
        try {
          const s = statSync(f);
          return `${s.size}:${s.mtimeMs}`;
        } catch {
          return 'missing';
        }
      })
      .join('|');
  }
}
