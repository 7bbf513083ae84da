/**
 * Plays a tunnel broker's update endpoint inside a test namespace:
 * `fake-broker <host> <port> <answer…>` answers each GET with the next answer (the last one
 * repeats) and prints one JSON line per request: {url, auth}.
 */
import { createServer } from 'node:http';

const [host, port, ...answers] = process.argv.slice(2);
let n = 0;
createServer((req, res) => {
  process.stdout.write(`${JSON.stringify({ url: req.url, auth: req.headers.authorization ?? null })}\n`);
  res.writeHead(200).end(answers[Math.min(n++, answers.length - 1)]);
}).listen(Number(port), host, () => process.stderr.write('ready\n'));
