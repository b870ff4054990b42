/* GeminiVideo console: evidence charts (uPlot), live job progress (SSE) and self-refreshing regions.
   Plain script, no build step; every page works without it, it only adds the live parts. */
(function () {
  "use strict";

  var FINAL = ["completed", "failed", "cancelled"];
  var STATUSES = ["queued", "started", "processing", "retrying"].concat(FINAL);
  var COLORS = { ctr: "#0b57d0", cpm: "#8f3f00", frequency: "#6a1b9a", spend: "#0f6b2f" };

  function fmt(metric, v) {
    if (v === null || v === undefined) { return "—"; }
    if (metric.key === "ctr") { return (v * 100).toFixed(2) + " %"; }
    if (metric.unit === "$") { return "$" + v.toFixed(2); }
    return v.toFixed(2);
  }

  function dayToSec(day) { return Date.parse(day + "T00:00:00Z") / 1000; }

  // ─── Evidence charts ──────────────────────────────────────────────────────────────────────────
  function overlay(metric, data) {
    return function (u) {
      var ctx = u.ctx, box = u.bbox;
      ctx.save();
      if (metric.band[0] !== null && metric.band[1] !== null) {
        var top = u.valToPos(metric.band[1], "y", true), bottom = u.valToPos(metric.band[0], "y", true);
        ctx.fillStyle = "rgba(11, 87, 208, 0.12)";
        ctx.fillRect(box.left, Math.min(top, bottom), box.width, Math.abs(bottom - top));
      }
      if (metric.threshold !== null) {
        var y = u.valToPos(metric.threshold, "y", true);
        ctx.strokeStyle = "#a1131b"; ctx.setLineDash([6, 4]); ctx.lineWidth = 1.5;
        ctx.beginPath(); ctx.moveTo(box.left, y); ctx.lineTo(box.left + box.width, y); ctx.stroke();
      }
      [[data.recent_window_start, "#4a5361", [2, 3]], [data.change_point, "#b26a00", []]].forEach(function (m) {
        if (!m[0]) { return; }
        var x = u.valToPos(dayToSec(m[0]), "x", true);
        ctx.strokeStyle = m[1]; ctx.setLineDash(m[2]); ctx.lineWidth = 2;
        ctx.beginPath(); ctx.moveTo(x, box.top); ctx.lineTo(x, box.top + box.height); ctx.stroke();
      });
      ctx.restore();
    };
  }

  function yRange(metric) {
    return function (u, lo, hi) {
      var values = [lo, hi, metric.band[0], metric.band[1], metric.threshold].filter(function (v) {
        return v !== null && v !== undefined && isFinite(v);
      });
      var min = Math.min.apply(null, values), max = Math.max.apply(null, values);
      if (min === max) { max = min + 1; }
      return [Math.max(0, min - (max - min) * 0.08), max + (max - min) * 0.08];
    };
  }

  function figureFor(holder, metric, data) {
    var figure = document.createElement("figure");
    figure.className = "chart";
    figure.setAttribute("data-metric", metric.key);
    var caption = document.createElement("figcaption");
    var present = metric.values.filter(function (v) { return v !== null; });
    caption.textContent = metric.label + " ";
    var note = document.createElement("span");
    note.className = "legend-note";
    note.textContent = "baseline " + fmt(metric, metric.band[0]) + "–" + fmt(metric, metric.band[1]) +
      (metric.threshold !== null ? "; red dashes: " + metric.threshold_label : "");
    caption.appendChild(note);
    figure.appendChild(caption);
    var summary = document.createElement("p");
    summary.className = "visually-hidden";
    summary.textContent = metric.label + " over " + data.days.length + " days: first " +
      fmt(metric, present[0]) + ", last " + fmt(metric, present[present.length - 1]) + ".";
    figure.appendChild(summary);
    holder.appendChild(figure);
    return figure;
  }

  function drawChart(figure, metric, data) {
    var width = Math.max(200, Math.min(figure.clientWidth || 300, 640));
    var opts = {
      width: width, height: 170, legend: { show: false }, cursor: { show: true, x: true, y: false },
      scales: { x: { time: true }, y: { range: yRange(metric) } },
      axes: [{ size: 30, font: "11px system-ui, sans-serif" },
             { size: 56, font: "11px system-ui, sans-serif",
               values: function (u, ticks) { return ticks.map(function (t) { return fmt(metric, t); }); } }],
      series: [{}, { label: metric.label, stroke: COLORS[metric.key] || "#333", width: 2, spanGaps: false,
                     points: { show: true, size: 4 } }],
      hooks: { drawClear: [overlay(metric, data)] }
    };
    /* global uPlot */
    var plot = new uPlot(opts, [data.days.map(dayToSec), metric.values], figure);
    plot.root.setAttribute("aria-hidden", "true");
  }

  function legend(holder, data) {
    var p = document.createElement("p");
    p.className = "chart-legend";
    p.textContent = "Last " + data.days.length + " days to " + data.as_of + ". Shaded: baseline band. " +
      "Orange line: detected change point (" + (data.change_point || "none found") + "). " +
      "Grey dots: the monitor's recent window (from " + data.recent_window_start + ").";
    holder.appendChild(p);
  }

  function loadEvidence(holder) {
    if (holder.getAttribute("data-loaded")) { return; }
    holder.setAttribute("data-loaded", "1");
    fetch(holder.getAttribute("data-evidence-url"), { credentials: "same-origin" })
      .then(function (r) { if (!r.ok) { throw new Error("HTTP " + r.status); } return r.json(); })
      .then(function (data) {
        holder.textContent = "";
        legend(holder, data);
        // All figures first, so the grid has its final columns before each chart measures its width.
        var figures = data.metrics.map(function (metric) { return figureFor(holder, metric, data); });
        data.metrics.forEach(function (metric, i) { drawChart(figures[i], metric, data); });
        holder.setAttribute("data-drawn", String(data.metrics.length));
      })
      .catch(function (err) { holder.textContent = "Evidence unavailable (" + err.message + ")."; });
  }

  function initCharts() {
    var holders = document.querySelectorAll("[data-evidence-url]");
    if (!holders.length || typeof uPlot === "undefined") { return; }
    if (!("IntersectionObserver" in window)) { holders.forEach(loadEvidence); return; }
    var seen = new IntersectionObserver(function (entries) {
      entries.forEach(function (e) { if (e.isIntersecting) { seen.unobserve(e.target); loadEvidence(e.target); } });
    }, { rootMargin: "300px" });
    holders.forEach(function (h) { seen.observe(h); });
  }

  // ─── Live job progress ────────────────────────────────────────────────────────────────────────
  function follow(item) {
    item.setAttribute("data-live", "1");
    var source = new EventSource(item.getAttribute("data-events-url"));
    var bar = item.querySelector("[data-role=bar]"), pct = item.querySelector("[data-role=pct]");
    var label = item.querySelector("[data-role=status]"), message = item.querySelector("[data-role=message]");
    function update(ev) {
      var data = JSON.parse(ev.data);
      var value = data.status === "completed" ? 100 : Math.max(Number(bar.value) || 0, Number(data.progress) || 0);
      bar.value = value;
      bar.textContent = Math.round(value) + " %";
      pct.textContent = Math.round(value) + " %";
      label.textContent = data.status;
      label.className = "status status-" + data.status;
      if (data.message) { message.textContent = data.message; }
      if (FINAL.indexOf(data.status) >= 0) {
        source.close();
        item.setAttribute("data-final", data.status);
        var cancel = item.querySelector("[data-role=cancel]");
        if (cancel) { cancel.hidden = true; }
      }
    }
    STATUSES.forEach(function (s) { source.addEventListener(s, update); });
    source.onerror = function () { if (item.getAttribute("data-final")) { source.close(); } };
  }

  function initJobs() {
    document.querySelectorAll("[data-events-url]").forEach(follow);
    var list = document.querySelector("[data-poll-new-s]");
    if (!list) { return; }
    // Jobs submitted after the page loaded (API, CLI, another operator) appear at the top and go live.
    window.setInterval(function () {
      if (document.hidden) { return; }
      fetch(window.location.href, { credentials: "same-origin" })
        .then(function (r) { return r.text(); })
        .then(function (html) {
          var fresh = new DOMParser().parseFromString(html, "text/html").querySelectorAll("#jobs-list > li.job");
          var added = [];
          fresh.forEach(function (item) { if (!document.getElementById(item.id)) { added.push(item); } });
          added.reverse().forEach(function (item) {
            var node = document.importNode(item, true);
            list.insertBefore(node, list.firstChild);
            if (node.getAttribute("data-events-url")) { follow(node); }
          });
          if (added.length) { document.getElementById("no-jobs").hidden = true; }
        })
        .catch(function () { /* the next tick tries again */ });
    }, Math.max(2, Number(list.getAttribute("data-poll-new-s"))) * 1000);
  }

  // ─── Self-refreshing regions (fleet) ──────────────────────────────────────────────────────────
  function initRefresh() {
    document.querySelectorAll("[data-refresh-s]").forEach(function (region) {
      var every = Math.max(2, Number(region.getAttribute("data-refresh-s"))) * 1000;
      window.setInterval(function () {
        if (document.hidden || region.contains(document.activeElement)) { return; }  // never steal focus
        fetch(window.location.href, { credentials: "same-origin" })
          .then(function (r) {
            if (r.redirected && r.url.indexOf("/console/sign-in") >= 0) { window.location.reload(); }
            return r.text();
          })
          .then(function (html) {
            var fresh = new DOMParser().parseFromString(html, "text/html").getElementById(region.id);
            if (fresh) { region.innerHTML = fresh.innerHTML; region.setAttribute("data-refreshed", Date.now()); }
          })
          .catch(function () { /* the next tick tries again */ });
      }, every);
    });
  }

  document.addEventListener("DOMContentLoaded", function () { initCharts(); initJobs(); initRefresh(); });
}());
