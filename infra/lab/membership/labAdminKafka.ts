/**
 * A Kafka admin client of a running lab, from lab.json: over the broker's own INTERNAL listener (never
 * behind a broker-link proxy, so a cut region does not stop the lab's own work), TLS against the lab's
 * CA, SCRAM as the admin principal.
 */
import { readFileSync } from 'node:fs';
import { Kafka, logLevel, type Admin } from 'kafkajs';
import { kafkaSecurityConfig } from '../../../shared/kafka/client.js';
import { KAFKA_ADMIN_PRINCIPAL, LabSecrets } from '../labSecrets.js';
import type { LabState } from '../labState.js';

export function labAdminKafka(state: LabState): Kafka {
  if (state.kafka === undefined || state.secretsDir === undefined)
    throw new Error('the lab has no secured Kafka broker recorded in lab.json: is it up?');
  const secrets = new LabSecrets(state.secretsDir);
  return new Kafka({
    clientId: 'hothot-lab-membership',
    brokers: [`127.0.0.1:${state.kafka.internalPort}`],
    logLevel: logLevel.NOTHING,
    ...kafkaSecurityConfig({
      ca: readFileSync(secrets.caCertFile, 'utf8'),
      username: KAFKA_ADMIN_PRINCIPAL,
      password: secrets.kafkaPassword(KAFKA_ADMIN_PRINCIPAL),
    }),
  });
}

/** Run `work` with a connected admin client of the lab; disconnects after. */
export async function withLabAdmin<T>(state: LabState, work: (admin: Admin) => Promise<T>): Promise<T> {
  const admin = labAdminKafka(state).admin();
  await admin.connect();
  try {
    return await work(admin);
  } finally {
    await admin.disconnect().catch(() => undefined);
  }
}
