/** `npm run fuzz -- --inputs 10000000 [--seed N]`: the long fuzz run, printing its figures. */
import { parseArgs } from 'node:util';
import { fuzz } from './harness.js';

const { values } = parseArgs({ options: { inputs: { type: 'string', default: '10000000' }, seed: { type: 'string', default: '1' } } });
const stats = fuzz(Number(values.inputs), Number(values.seed));
const reasons = Object.entries(stats.drops).filter(([, v]) => v > 0).length;
console.log(JSON.stringify({ ...stats, dropReasonsSeen: reasons, inputsPerSecond: Math.round(stats.inputs / stats.seconds) }, null, 2));
process.exit(stats.failures.length ? 1 : 0);
