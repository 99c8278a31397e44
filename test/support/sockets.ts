/**
 * Which TCP connections a process holds, from procfs (Linux): its socket inodes from
 * `/proc/<pid>/fd`, matched against `/proc/net/tcp` and `/proc/net/tcp6`. Lets a test prove where a
 * region's connections go — e.g. never straight to the broker around its proxy.
 */
import { readFileSync, readdirSync, readlinkSync } from 'node:fs';

export interface TcpConnection {
  readonly localPort: number;
  readonly remotePort: number;
  readonly remoteAddress: string;
  /** `ESTABLISHED`, `SYN_SENT`, `LISTEN`, … */
  readonly state: string;
  readonly inode: number;
}

const STATES: Readonly<Record<string, string>> = {
  '01': 'ESTABLISHED',
  '02': 'SYN_SENT',
  '03': 'SYN_RECV',
  '04': 'FIN_WAIT1',
  '05': 'FIN_WAIT2',
  '06': 'TIME_WAIT',
  '07': 'CLOSE',
  '08': 'CLOSE_WAIT',
  '09': 'LAST_ACK',
  '0A': 'LISTEN',
  '0B': 'CLOSING',
};

/** Every TCP socket of the machine (IPv4 and IPv6 tables). */
export function allTcpConnections(): TcpConnection[] {
  const out: TcpConnection[] = [];
  for (const table of ['/proc/net/tcp', '/proc/net/tcp6']) {
    let text: string;
    try {
      text = readFileSync(table, 'utf8');
    } catch {
      continue;
    }
    for (const line of text.split('\n').slice(1)) {
      const f = line.trim().split(/\s+/);
      if (f.length < 10) continue;
      const [, localHex] = f[1]!.split(':');
      const [remoteAddrHex, remoteHex] = f[2]!.split(':');
      out.push({
        localPort: parseInt(localHex!, 16),
        remotePort: parseInt(remoteHex!, 16),
        remoteAddress: remoteAddrHex!,
        state: STATES[f[3]!] ?? f[3]!,
        inode: Number(f[9]),
      });
    }
  }
  return out;
}

/** Socket inodes open in `pid` (empty when the process is gone). */
export function socketInodes(pid: number): Set<number> {
  const inodes = new Set<number>();
  let fds: string[];
  try {
    fds = readdirSync(`/proc/${pid}/fd`);
  } catch {
    return inodes;
  }
  for (const fd of fds) {
    try {
      const m = /^socket:\[(\d+)\]$/.exec(readlinkSync(`/proc/${pid}/fd/${fd}`));
      if (m) inodes.add(Number(m[1]));
    } catch {
      // closed meanwhile
    }
  }
  return inodes;
}

/** TCP connections held by `pid`. */
export function tcpConnectionsOf(pid: number): TcpConnection[] {
  const inodes = socketInodes(pid);
  return allTcpConnections().filter((c) => c.inode !== 0 && inodes.has(c.inode));
}

/** Established connections whose server side is `port` on this machine (counted from the server's side). */
export function establishedTo(port: number): TcpConnection[] {
  return allTcpConnections().filter((c) => c.state === 'ESTABLISHED' && c.localPort === port);
}
