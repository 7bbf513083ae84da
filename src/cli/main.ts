#!/usr/bin/env node
/** Entry point of the `tun6in4` command (see program.ts). */
import { main } from './program.js';

await main(process.argv);
