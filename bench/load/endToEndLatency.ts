/**
 * Kafka's own end-to-end latency tool, `org.apache.kafka.tools.EndToEndLatency` (kafka-tools of the
 * broker's version, jars from infra/kafka-tools/pom.xml): the Java row of the transport floor (#5), a
 * floor measured by the Java client rather than by ours.
 *
 * What it does (Kafka 3.9): one producer (acks as given, linger.ms 0, the client's defaults otherwise:
 * idempotent) and one consumer assigned the topic's partitions at their end (no group; fetch.max.wait.ms 0,
 * so it polls without waiting on the broker); for each message, sends it, waits for the ack, polls
 * until it arrives. One message at a time, so no queueing: the time of one round trip each. Its
 * percentiles are of latencies truncated to whole milliseconds (a 2 is 2–3 ms); its average is exact.
 * There is no warm-up: the first message pays for the producer's metadata and connection.
 */
import { join } from 'node:path';
import { ensureKafkaToolsJars, KAFKA_TOOLS_LOG4J } from '../../infra/lab/kafkaToolsJars.js';
import { CommandError, indent, lastLines, run } from '../../infra/lab/processes.js';
import { javaBinary } from '../lab/debeziumPeer.js';

const MAIN_CLASS = 'org.apache.kafka.tools.EndToEndLatency';
/** The JVM options bin/kafka-run-class.sh runs a tool with (KAFKA_HEAP_OPTS, KAFKA_JVM_PERFORMANCE_OPTS). */
const JVM_OPTIONS = [
  '-Xmx256M',
  '-server',
  '-XX:+UseG1GC',
  '-XX:MaxGCPauseMillis=20',
  '-XX:InitiatingHeapOccupancyPercent=35',
  '-XX:+ExplicitGCInvokesConcurrent',
  '-Djava.awt.headless=true',
];
/** Beyond the JVM's start, 20 ms per message: many times a round trip, even on a loaded machine. */
const TIMEOUT_BASE_MS = 60_000;
const TIMEOUT_PER_MESSAGE_MS = 20;
/** The tool's progress line, one per 1,000 messages: `<i>\t<ms>`. */
const PROGRESS_LINE = /^\d+\t[\d.,]+\r?$/;

export interface EndToEndLatencyOptions {
  /** `host:port` the producer and the consumer bootstrap from. */
  readonly bootstrap: string;
  /** An existing topic (the tool would create a missing one with the broker's defaults). */
  readonly topic: string;
  readonly messages: number;
  readonly messageBytes: number;
  /** Client properties (security) for the producer and the consumer; it holds a password, so 0600. */
  readonly propertiesFile: string;
  /** Progress of a first download of the jars. */
  readonly log: (message: string) => void;
}

/** What the tool prints, in ms: its average and three percentiles (whole ms, truncated). */
export interface EndToEndLatencyFigures {
  readonly avg: number;
  readonly p50: number;
  readonly p99: number;
  readonly p999: number;
}

export interface EndToEndLatencyResult extends EndToEndLatencyFigures {
  /** `EndToEndLatency <kafka version>`. */
  readonly tool: string;
  readonly messages: number;
  readonly messageBytes: number;
  readonly acks: 'all';
}

/** Fetch the jars if needed (Maven, first use), run the tool with acks=all and parse its results. */
export async function endToEndLatency(options: EndToEndLatencyOptions): Promise<EndToEndLatencyResult> {
  const jars = await ensureKafkaToolsJars({ onProgress: options.log });
  const { stdout } = await run(
    javaBinary(),
    [
      ...JVM_OPTIONS,
      `-Dlog4j.configuration=file:${KAFKA_TOOLS_LOG4J}`,
      '-cp',
      join(jars.libsDir, '*'),
      MAIN_CLASS,
      options.bootstrap,
      options.topic,
      String(options.messages),
      'all',
      String(options.messageBytes),
      options.propertiesFile,
    ],
    { timeoutMs: TIMEOUT_BASE_MS + TIMEOUT_PER_MESSAGE_MS * options.messages },
  ).catch((err: unknown) => {
    throw err instanceof CommandError ? toolError(err) : err;
  });
  return {
    tool: `EndToEndLatency ${jars.version}`,
    messages: options.messages,
    messageBytes: options.messageBytes,
    acks: 'all',
    ...parseEndToEndLatency(stdout),
  };
}

/**
 * A failed run, said in its first line (the report shows only that one): how it ended and the tool's
 * own message (it prints the exception's message, then its stack trace), its last output after that.
 */
function toolError(err: CommandError): Error {
  const how =
    err.signal !== null
      ? `was killed by ${err.signal}`
      : err.exitCode !== null
        ? `exited with code ${err.exitCode}`
        : 'could not start (is Java installed?)';
  const said = err.output.split('\n').find((l) => l.trim() !== '' && !PROGRESS_LINE.test(l));
  return new Error(
    `Kafka's EndToEndLatency ${how}${said !== undefined ? `: ${said.trim()}` : ''}\n${indent(lastLines(err.output, 20))}`,
    { cause: err },
  );
}

/**
 * The tool's result lines (Kafka 3.9, printResults):
 *
 *   Avg latency: 2.6121 ms
 *   Percentiles: 50th = 2, 99th = 15, 99.9th = 42
 *
 * (after a progress line per 1,000 messages, `<i>\t<ms>`). The average goes through the JVM's default
 * locale, so its decimal separator may be a comma.
 */
export function parseEndToEndLatency(stdout: string): EndToEndLatencyFigures {
  const avg = /^Avg latency: (\d+(?:[.,]\d+)?) ms\r?$/m.exec(stdout);
  const percentiles = /^Percentiles: 50th = (\d+), 99th = (\d+), 99\.9th = (\d+)\r?$/m.exec(stdout);
  if (avg === null || percentiles === null) {
    throw new Error(
      `${MAIN_CLASS} exited without its results; its last output:\n${indent(lastLines(stdout, 10) || '(none)')}`,
    );
  }
  return {
    avg: Number(avg[1]!.replace(',', '.')),
    p50: Number(percentiles[1]),
    p99: Number(percentiles[2]),
    p999: Number(percentiles[3]),
  };
}
