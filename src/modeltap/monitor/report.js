// The report's charts (Chart.js 4, inlined beside this script by report.py).
const D = JSON.parse(document.getElementById('data').textContent);
const RED = '#d62728', BLUE = '#1f77b4', GREY = '#9aa5b1', GREEN = '#2ca02c';
const compact = new Intl.NumberFormat('en', {notation: 'compact', maximumSignificantDigits: 3});
const fmt = v => v === null ? 'n/a' : Math.abs(v) >= 1000 ? compact.format(v)
  : (v !== 0 && Math.abs(v) < 0.001) ? v.toExponential(2) : +v.toPrecision(4);
const key = r => r.signal + '\u0000' + r.feature;
const breachedFeatures = new Set(D.results.filter(r => r.breached).map(key));
function card(parent, title, breached, note) {
  const c = document.createElement('div'); c.className = 'card' + (breached ? ' breached' : '');
  c.dataset.feature = title;
  const h = document.createElement('h3'); h.textContent = title;
  const b = document.createElement('span'); b.className = 'badge' + (breached ? '' : ' ok');
  b.textContent = breached ? 'BREACH' : 'ok'; h.appendChild(b); c.appendChild(h);
  if (note) { const p = document.createElement('div'); p.className = 'muted'; p.textContent = note; c.appendChild(p); }
  const box = document.createElement('div'); box.className = 'chart';
  const canvas = document.createElement('canvas'); box.appendChild(canvas); c.appendChild(box);
  parent.appendChild(c); return canvas;
}
const common = {responsive: true, maintainAspectRatio: false, animation: false,
  plugins: {legend: {position: 'bottom', labels: {boxWidth: 12}}}};
// 1. distributions: reference vs production, as shares
const dist = document.getElementById('distributions');
const feats = [...D.features].sort((a, b) => breachedFeatures.has(key(b)) - breachedFeatures.has(key(a)));
for (const f of feats) {
  const br = breachedFeatures.has(key(f));
  const share = c => { const t = c.reduce((a, b) => a + b, 0) || 1; return c.map(x => x / t); };
  let labels;
  if (f.feature_type === 'numerical') {
    const e = f.reference.edges; labels = e.slice(0, -1).map((x, i) => fmt((x + e[i + 1]) / 2));
  } else labels = f.reference.categories;
  const metricsOf = D.results.filter(r => key(r) === key(f)).map(r => `${r.metric} ${fmt(r.value)}`);
  new Chart(card(dist, f.feature, br, f.signal + ' · ' + metricsOf.join(' · ')), {type: 'bar',
    data: {labels, datasets: [
      {label: 'reference', data: share(f.reference.counts), backgroundColor: GREY},
      {label: 'production', data: share(f.production.counts), backgroundColor: br ? RED : BLUE}]},
    options: {...common, scales: {y: {title: {display: true, text: 'share of rows'}}}}});
}
if (!feats.length) dist.parentElement.style.display = 'none';
// 2. each metric against its threshold
const mt = document.getElementById('thresholds');
const groups = {};
for (const r of D.results) (groups[r.signal + ' · ' + r.metric] ??= []).push(r);
for (const [title, rows] of Object.entries(groups)) {
  const br = rows.some(r => r.breached);
  new Chart(card(mt, title, br), {type: 'bar', data: {labels: rows.map(r => r.feature || r.metric),
    datasets: [{label: 'value', data: rows.map(r => r.value), backgroundColor: rows.map(r => r.breached ? RED : GREEN)},
               {type: 'line', label: 'threshold', data: rows.map(r => r.threshold), borderColor: '#1d2433',
                borderDash: [6, 4], pointStyle: 'line', pointRadius: 10, showLine: rows.length > 1, fill: false}]},
    options: {...common, indexAxis: 'x'}});
}
// 3. history over runs
const hs = document.getElementById('history');
const series = {};
for (const r of D.history) ((series[r.signal + ' · ' + r.metric] ??= {})[r.feature || r.metric] ??= []).push(r);
const palette = ['#1f77b4', '#ff7f0e', '#9467bd', '#8c564b', '#e377c2', '#17becf', '#bcbd22', '#7f7f7f'];
for (const [title, byFeature] of Object.entries(series)) {
  const runs = [...new Set(D.history.map(r => r.run_id))];  // history is in run order
  const when = Object.fromEntries(D.history.map(r => [r.run_id, r.run_time]));
  const datasets = Object.entries(byFeature).map(([feat, rows], i) => {
    const at = Object.fromEntries(rows.map(r => [r.run_id, r]));
    return {label: feat, data: runs.map(t => at[t] ? at[t].value : null), borderColor: palette[i % palette.length],
      pointBackgroundColor: runs.map(t => at[t] && at[t].breached ? RED : palette[i % palette.length]),
      pointRadius: runs.map(t => at[t] && at[t].breached ? 5 : 3), spanGaps: true};
  });
  const th = Object.values(byFeature)[0];
  const thAt = Object.fromEntries(th.map(r => [r.run_id, r.threshold]));
  datasets.push({label: 'threshold', data: runs.map(t => thAt[t] ?? null), borderColor: '#1d2433',
    borderDash: [6, 4], pointRadius: 0, spanGaps: true});
  const breached = Object.values(byFeature).some(rows => rows.some(r => r.breached));
  new Chart(card(hs, title, breached, runs.length + ' run(s)'), {type: 'line',
    data: {labels: runs.map(id => when[id].replace('T', ' ').replace('Z', '')), datasets}, options: common});
}
document.body.dataset.ready = 'true';
