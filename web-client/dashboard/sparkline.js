// Inline SVG sparklines of the last minutes of a participant's figures.

const NS = 'http://www.w3.org/2000/svg';
const W = 140;
const H = 32;

/**
 * Points of one series scaled into the box; nulls are skipped.
 * @param {(number|null)[]} values
 * @param {number} max
 */
export function points(values, max) {
  const n = values.length;
  const out = [];
  for (let i = 0; i < n; i++) {
    const v = values[i];
    if (v === null || v === undefined) continue;
    const x = n < 2 ? W : (i / (n - 1)) * W;
    const y = H - 1 - (Math.min(v, max) / (max || 1)) * (H - 2);
    out.push(`${x.toFixed(1)},${y.toFixed(1)}`);
  }
  return out.join(' ');
}

/**
 * An SVG with one polyline per series, all on the same scale.
 * @param {{values: (number|null)[], cls: string}[]} series
 * @param {string} label  accessible description
 * @param {number} [floor]  the scale's minimum top (so near-zero noise stays flat)
 */
export function sparkline(series, label, floor = 1) {
  const svg = document.createElementNS(NS, 'svg');
  svg.setAttribute('class', 'spark');
  svg.setAttribute('width', String(W));
  svg.setAttribute('height', String(H));
  svg.setAttribute('viewBox', `0 0 ${W} ${H}`);
  svg.setAttribute('role', 'img');
  svg.setAttribute('aria-label', label);
  const max = Math.max(floor, ...series.flatMap((s) => s.values.filter((v) => typeof v === 'number')));
  for (const s of series) {
    const line = document.createElementNS(NS, 'polyline');
    line.setAttribute('class', s.cls);
    line.setAttribute('points', points(s.values, max));
    svg.append(line);
  }
  return svg;
}
