/**
 * The lab's broker links as Toxiproxy proxies, the faults the lab and the tests inject into them
 * (`partition`, `heal`, `latency`) and how each proxy stands. This is the lab cutting a link from
 * outside; a region's own view of its link (probing it, `/v1/status`) is `BrokerLinkMonitor` in
 * shared/kafka/brokerLink.ts.
 *
 * One proxy per region, `kafka-<region>`, listens on the address the broker advertises to that
 * region's listener and forwards to the listener's real port. A region's processes bootstrap through
 * the proxy and the metadata they receive names the proxy again, so nothing a region does can reach
 * the broker around its proxy: cutting the proxy cuts the region.
 */
import { ToxiproxyClient } from './toxiproxyClient.js';

/** How a link is cut. */
export const PartitionMode = {
  /** Disable the proxy: every open connection is closed, new ones are refused. A clean, fast failure. */
  Reset: 'reset',
  /** `timeout` toxics with timeout 0 both ways: connections open, bytes vanish, nothing ever answers. */
  Blackhole: 'blackhole',
} as const;
export type PartitionMode = (typeof PartitionMode)[keyof typeof PartitionMode];
export const PARTITION_MODES: readonly PartitionMode[] = [PartitionMode.Reset, PartitionMode.Blackhole];

export const BLACKHOLE_TOXICS = ['blackhole-up', 'blackhole-down'] as const;
export const LATENCY_TOXICS = ['latency-up', 'latency-down'] as const;

/** Name of region `region`'s broker-link proxy. */
export function brokerProxyName(region: string): string {
  return `kafka-${region}`;
}

/** How one broker link's proxy stands: cut or not, and the latency added. */
export interface BrokerLinkProxyState {
  region: string;
  proxy: string;
  listen: string;
  upstream: string;
  /** `up`, or how it is cut. */
  state: 'up' | PartitionMode;
  /** Added round-trip latency in ms (0 when none). */
  latencyMs: number;
}

/** Cut, heal and slow down the regions' broker links through their Toxiproxy proxies. */
export class BrokerLinkProxies {
  readonly client: ToxiproxyClient;

  constructor(url: string) {
    this.client = new ToxiproxyClient(url);
  }

  /** Create (or re-point) one proxy per region: listen on its advertised address, forward to its listener. */
  async define(links: readonly { region: string; listen: string; upstream: string }[]): Promise<void> {
    await this.client.populate(
      links.map((l) => ({ name: brokerProxyName(l.region), listen: l.listen, upstream: l.upstream })),
    );
  }

  /** Cut `region`'s link. Switching modes heals the other mode first. */
  async partition(region: string, mode: PartitionMode = PartitionMode.Reset): Promise<void> {
    const proxy = brokerProxyName(region);
    if (mode === PartitionMode.Reset) {
      for (const t of BLACKHOLE_TOXICS) await this.client.removeToxic(proxy, t);
      await this.client.setEnabled(proxy, false);
      return;
    }
    await this.client.setEnabled(proxy, true);
    await this.client.setToxic(proxy, {
      name: BLACKHOLE_TOXICS[0],
      type: 'timeout',
      stream: 'upstream',
      attributes: { timeout: 0 },
    });
    await this.client.setToxic(proxy, {
      name: BLACKHOLE_TOXICS[1],
      type: 'timeout',
      stream: 'downstream',
      attributes: { timeout: 0 },
    });
  }

  /** Restore `region`'s link (added latency stays: see {@link latency}). */
  async heal(region: string): Promise<void> {
    const proxy = brokerProxyName(region);
    for (const t of BLACKHOLE_TOXICS) await this.client.removeToxic(proxy, t);
    await this.client.setEnabled(proxy, true);
  }

  /**
   * Add `ms` of round-trip latency to `region`'s link (half each way, ±`jitterMs` each way); 0
   * removes it. WAN simulation: the kernel here has no netem, so latency comes from the proxy.
   */
  async latency(region: string, ms: number, jitterMs = 0): Promise<void> {
    const proxy = brokerProxyName(region);
    if (ms <= 0) {
      for (const t of LATENCY_TOXICS) await this.client.removeToxic(proxy, t);
      return;
    }
    const half = Math.round(ms / 2);
    for (const [name, stream] of [
      [LATENCY_TOXICS[0], 'upstream'],
      [LATENCY_TOXICS[1], 'downstream'],
    ] as const) {
      await this.client.setToxic(proxy, {
        name,
        type: 'latency',
        stream,
        attributes: { latency: half, jitter: Math.round(jitterMs) },
      });
    }
  }

  /** How every broker link's proxy (named `kafka-<region>`) stands. */
  async states(): Promise<BrokerLinkProxyState[]> {
    const proxies = await this.client.proxies();
    return Object.values(proxies)
      .filter((p) => p.name.startsWith('kafka-'))
      .map((p): BrokerLinkProxyState => {
        const blackholed = p.toxics.some((t) => (BLACKHOLE_TOXICS as readonly string[]).includes(t.name));
        const latencyMs = p.toxics
          .filter((t) => (LATENCY_TOXICS as readonly string[]).includes(t.name))
          .reduce((sum, t) => sum + (t.attributes.latency ?? 0), 0);
        return {
          region: p.name.slice('kafka-'.length),
          proxy: p.name,
          listen: p.listen,
          upstream: p.upstream,
          state: !p.enabled ? PartitionMode.Reset : blackholed ? PartitionMode.Blackhole : 'up',
          latencyMs,
        };
      })
      .sort((a, b) => a.region.localeCompare(b.region));
  }
}
