// Draws the status page's charts from /status.json (the stored rollups):
// p50/p90/p99 by minute over 3 hours, and p50/p90/p99 and availability by
// hour over 30 days, per series.
(function () {
  'use strict';
  function chart(el, title, data, series, yfmt) {
    if (typeof uPlot === 'undefined') return;
    var opts = {
      title: title, width: Math.min(960, window.innerWidth - 40), height: 220,
      series: [{}].concat(series.map(function (s) { s.points = { show: true, size: 4 }; s.spanGaps = false; return s; })),
      axes: [{}, { size: 70, values: function (u, vals) { return vals.map(yfmt); } }]
    };
    el.chart = new uPlot(opts, data, el);
  }
  fetch('/status.json', { cache: 'no-store' }).then(function (r) { return r.json(); }).then(function (rep) {
    rep.series.forEach(function (s) {
      var sec = document.getElementById('series-' + s.series);
      if (!sec) return;
      var mins = s.minutes;
      chart(sec.querySelector('[data-chart=minutes]'), 'latency by minute, last 3 hours (ms)',
        [mins.map(function (p) { return p.t; }), mins.map(function (p) { return p.p50_ms; }), mins.map(function (p) { return p.p90_ms; }), mins.map(function (p) { return p.p99_ms; })],
        [{ label: 'p50', stroke: '#2a7' }, { label: 'p90', stroke: '#e90' }, { label: 'p99', stroke: '#c33' }],
        function (v) { return v + ' ms'; });
      var pts = s.hourly;
      var t = pts.map(function (p) { return p.t; });
      chart(sec.querySelector('[data-chart=latency]'), 'latency by hour, 30 days (ms)',
        [t, pts.map(function (p) { return p.p50_ms; }), pts.map(function (p) { return p.p90_ms; }), pts.map(function (p) { return p.p99_ms; })],
        [{ label: 'p50', stroke: '#2a7' }, { label: 'p90', stroke: '#e90' }, { label: 'p99', stroke: '#c33' }],
        function (v) { return v + ' ms'; });
      chart(sec.querySelector('[data-chart=availability]'), 'availability by hour, 30 days (%)',
        [t, pts.map(function (p) { return p.availability === null ? null : p.availability * 100; })],
        [{ label: 'availability', stroke: '#36c' }],
        function (v) { return v + '%'; });
    });
    document.body.setAttribute('data-charts', 'drawn');
  }).catch(function (e) {
    document.body.setAttribute('data-charts', 'failed: ' + e);
  });
})();
