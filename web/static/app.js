// Vexil UI: small progressive enhancements; every page works without them.
(function () {
  'use strict';
  function ready(fn) { if (document.readyState !== 'loading') fn(); else document.addEventListener('DOMContentLoaded', fn); }

  // A select that changes which inputs a row shows (target, filter kind,
  // operator) re-renders the form on the server, keeping what was typed.
  function wireRefresh(root) {
    root.querySelectorAll('select[data-refresh]').forEach(function (sel) {
      sel.addEventListener('change', function () {
        var b = sel.form && sel.form.querySelector('[data-refresh-button]');
        if (b) { sel.form.requestSubmit(b); }
      });
    });
  }

  // JSON payloads are checked as one types.
  function wireJSON(root) {
    root.querySelectorAll('[data-json]').forEach(function (el) {
      var msg = document.createElement('span');
      msg.className = 'check'; msg.setAttribute('aria-live', 'polite');
      el.insertAdjacentElement('afterend', msg);
      function check() {
        var v = el.value.trim();
        if (!v) { msg.textContent = ''; el.removeAttribute('aria-invalid'); return; }
        try { JSON.parse(v); msg.textContent = 'valid JSON'; msg.className = 'check ok'; el.removeAttribute('aria-invalid'); }
        catch (e) { msg.textContent = 'not valid JSON: ' + e.message; msg.className = 'check err'; el.setAttribute('aria-invalid', 'true'); }
      }
      el.addEventListener('input', check);
    });
  }

  // Dates and versions: the pattern attribute, reported as one types.
  function wirePatterns(root) {
    root.querySelectorAll('input[data-check]').forEach(function (el) {
      el.addEventListener('input', function () {
        var bad = el.value !== '' && !el.checkValidity();
        if (bad) el.setAttribute('aria-invalid', 'true'); else el.removeAttribute('aria-invalid');
        el.title = bad ? (el.dataset.check === 'date' ? 'a date (2026-01-31) or a relative date (-7d)' : 'a version such as 1.2.3') : '';
      });
    });
  }

  // Usage charts (uPlot), only where the server sent a series: one line
  // per series, named by data-labels (default "evaluations").
  var colors = ['#0b4fb3', '#b3400b', '#0b8a3e', '#7a0bb3', '#b38a0b', '#0b9fb3'];
  function wireCharts(root) {
    if (!window.uPlot) return;
    root.querySelectorAll('.chart[data-series]').forEach(function (el) {
      if (el.dataset.drawn) return;
      el.dataset.drawn = '1';
      var data = JSON.parse(el.dataset.series);
      var labels = el.dataset.labels ? JSON.parse(el.dataset.labels) : ['evaluations'];
      var series = [{}];
      for (var i = 1; i < data.length; i++) series.push({ label: labels[i - 1] || ('series ' + i), stroke: colors[(i - 1) % colors.length] });
      new window.uPlot({ width: Math.min(el.clientWidth || 600, 900), height: 160, series: series }, data, el);
    });
    // Sparklines of the flag list: no axes, no legend.
    root.querySelectorAll('.spark[data-series]').forEach(function (el) {
      if (el.dataset.drawn) return;
      el.dataset.drawn = '1';
      var data = JSON.parse(el.dataset.series);
      if (!data[0] || data[0].length < 2) { el.textContent = el.dataset.total || '0'; return; }
      new window.uPlot({ width: 120, height: 28, legend: { show: false }, cursor: { show: false }, axes: [{ show: false }, { show: false }],
        scales: { x: { time: true } }, series: [{}, { stroke: '#0b4fb3', fill: 'rgba(11,79,179,0.15)' }] }, data, el);
    });
  }

  function wire(root) { wireRefresh(root); wireJSON(root); wirePatterns(root); wireCharts(root); }
  ready(function () { wire(document); });
  document.addEventListener('htmx:afterSwap', function (e) { wire(e.target); });
})();
