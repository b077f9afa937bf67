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

  // Usage charts (uPlot), only where the server sent a series.
  function wireCharts(root) {
    root.querySelectorAll('.chart[data-series]').forEach(function (el) {
      if (!window.uPlot) return;
      var data = JSON.parse(el.dataset.series);
      new window.uPlot({ width: Math.min(el.clientWidth || 600, 900), height: 160, series: [{}, { label: 'evaluations', stroke: '#0b4fb3' }] }, data, el);
    });
  }

  function wire(root) { wireRefresh(root); wireJSON(root); wirePatterns(root); wireCharts(root); }
  ready(function () { wire(document); });
  document.addEventListener('htmx:afterSwap', function (e) { wire(e.target); });
})();
