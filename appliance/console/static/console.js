/* The console's only script (no inline scripts: the Content-Security-Policy allows scripts from here alone).
 *  - [data-refresh="URL"][data-every="s"]: the element's content is replaced by URL's answer every s seconds
 *    (fragments are server-rendered HTML); it stops while the tab is hidden.
 *  - script[type="application/json"][data-chart]: a Plotly figure drawn into the element named by data-chart.
 *  - [data-browser-timezone]: filled with the browser's time zone (the login form: a new user's default).
 *  - form[data-confirm]: asks before sending (reboot, push to all).
 */
(function () {
  "use strict";

  function drawCharts(root) {
    if (!window.Plotly) { return; }
    root.querySelectorAll('script[type="application/json"][data-chart]').forEach(function (data) {
      var target = document.getElementById(data.dataset.chart);
      if (!target) { return; }
      var figure = JSON.parse(data.textContent);
      var config = { displaylogo: false, responsive: true, modeBarButtonsToRemove: ["select2d", "lasso2d"] };
      window.Plotly.react(target, figure.data, figure.layout || {}, config);
    });
  }

  function refresh(element) {
    if (document.hidden) { return; }
    fetch(element.dataset.refresh, { headers: { "X-Fragment": "1" }, credentials: "same-origin" })
      .then(function (response) {
        if (response.redirected || !response.ok) { throw new Error(String(response.status)); }
        return response.text();
      })
      .then(function (html) {
        element.innerHTML = html;
        element.removeAttribute("data-stale");
        drawCharts(element);
      })
      .catch(function () { element.setAttribute("data-stale", "1"); });
  }

  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("[data-browser-timezone]").forEach(function (input) {
      try { input.value = Intl.DateTimeFormat().resolvedOptions().timeZone || ""; } catch (e) { input.value = ""; }
    });
    document.querySelectorAll("[data-refresh]").forEach(function (element) {
      var seconds = Number(element.dataset.every || 5);
      window.setInterval(function () { refresh(element); }, seconds * 1000);
    });
    document.querySelectorAll("form[data-confirm]").forEach(function (form) {
      form.addEventListener("submit", function (event) {
        if (!window.confirm(form.dataset.confirm)) { event.preventDefault(); }
      });
    });
    document.querySelectorAll("select[data-autosubmit]").forEach(function (select) {
      select.addEventListener("change", function () { select.form.submit(); });
    });
    drawCharts(document);
  });
})();
