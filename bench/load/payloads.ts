/** Request bodies and event payloads of the same size for hothot and its peers. */

const PAD = 'x'.repeat(64);

/** The JSON value written for item number `n` (~90 bytes). */
export function itemValue(n: number): string {
  return `{"n":${n},"pad":"${PAD}"}`;
}

/** An outbox payload shaped like hothot's change event (shared/kafka/envelope.ts). */
export function outboxPayload(collection: string, key: string): string {
  const now = Date.now();
  return JSON.stringify({
    v: 1,
    type: 'change',
    origin: 'us',
    collection,
    key,
    value: JSON.parse(itemValue(0)) as unknown,
    deleted: false,
    hlc: { wall: now, logical: 0, region: 'us' },
    vv: { us: 1 },
    writtenAt: now,
  });
}
