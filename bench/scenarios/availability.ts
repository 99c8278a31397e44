/**
 * `npm run bench -- --only availability [--quick]`: the availability study (infra/lab/availability/),
 * which starts labs of its own (N = 2 and 3 regions with the front door), so it runs alone, before and
 * without the bench's own lab. Its report goes next to the bench's: <out>/<timestamp>-availability.*.
 */
import { runAvailabilityCommand } from '../../infra/lab/availability/availabilityCommand.js';

export async function availability(options: {
  quick: boolean;
  out: string;
  log: (message: string) => void;
}): Promise<number> {
  const result = await runAvailabilityCommand(
    { quick: options.quick, writes: 20, reads: 20, out: options.out },
    options.log,
  );
  return result.lost > 0 ? 1 : 0;
}
