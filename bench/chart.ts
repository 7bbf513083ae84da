/** A small SVG bar chart of the macro benchmark: TCP single stream and UDP packets/s per forwarder. */

export interface ChartRow {
  name: string;
  tcp1: number;
  udpKpps: number;
}

const esc = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;');

export function renderChart(rows: ChartRow[], env: { cpu?: string; cores: number; kernel: string; node: string; date: string }): string {
  const W = 900;
  const rowH = 26;
  const left = 190;
  const panelW = (W - left - 40) / 2;
  const top = 60;
  const H = top + rows.length * rowH + 50;
  const maxT = Math.max(...rows.map((r) => r.tcp1), 0.001);
  const maxU = Math.max(...rows.map((r) => r.udpKpps), 0.001);
  const out: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" font-family="sans-serif" font-size="12">`,
    `<rect width="100%" height="100%" fill="white"/>`,
    `<text x="${W / 2}" y="20" text-anchor="middle" font-size="15" font-weight="bold">6in4 forwarders through two namespaces (higher is better)</text>`,
    `<text x="${left + panelW / 2}" y="${top - 12}" text-anchor="middle" font-weight="bold">TCP, 1 stream (Gbit/s)</text>`,
    `<text x="${left + panelW + 20 + panelW / 2}" y="${top - 12}" text-anchor="middle" font-weight="bold">UDP, 64-byte payloads (k packets/s)</text>`,
  ];
  rows.forEach((r, i) => {
    const y = top + i * rowH;
    const ours = r.name.startsWith('tun6in4');
    const color = ours ? '#d9480f' : r.name.startsWith('kernel') ? '#868e96' : r.name.startsWith('c-') ? '#1c7ed6' : '#495057';
    out.push(`<text x="${left - 8}" y="${y + 16}" text-anchor="end"${ours ? ' font-weight="bold"' : ''}>${esc(r.name)}</text>`);
    const tw = (r.tcp1 / maxT) * (panelW - 60);
    out.push(`<rect x="${left}" y="${y + 4}" width="${tw.toFixed(1)}" height="${rowH - 8}" fill="${color}"/>`);
    out.push(`<text x="${left + tw + 4}" y="${y + 16}">${r.tcp1.toFixed(2)}</text>`);
    const ux = left + panelW + 20;
    const uw = (r.udpKpps / maxU) * (panelW - 60);
    out.push(`<rect x="${ux}" y="${y + 4}" width="${uw.toFixed(1)}" height="${rowH - 8}" fill="${color}"/>`);
    out.push(`<text x="${ux + uw + 4}" y="${y + 16}">${r.udpKpps.toFixed(0)}</text>`);
  });
  out.push(`<text x="${W / 2}" y="${H - 15}" text-anchor="middle" fill="#555">${esc(`${env.cpu ?? ''}, ${env.cores} cores, Linux ${env.kernel}, Node ${env.node}, ${env.date}`)}</text>`);
  out.push('</svg>');
  return `${out.join('\n')}\n`;
}
