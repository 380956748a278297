// wardgate admin dashboard: polls the admin API and draws small SVG charts. No framework, no
// build step; every value goes into the page through textContent (never as HTML).
"use strict";
(function () {
  var POLL_MS = 1500, POINTS = 80, SVG = "http://www.w3.org/2000/svg";
  var CLASSES = ["2xx", "3xx", "4xx", "5xx"];
  var prev = null, history = { rate: [], p50: [], p95: [], p99: [], auth: {} }, authOrder = [];

  function $(id) { return document.getElementById(id); }
  function el(tag, cls, text) {
    var e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined && text !== null) e.textContent = String(text);
    return e;
  }
  function push(arr, v) { arr.push(v); if (arr.length > POINTS) arr.shift(); }
  function fmtMs(s) {
    if (s === null || s === undefined) return "–";
    var ms = s * 1000;
    return ms >= 1000 ? (ms / 1000).toFixed(1) + " s" : (ms < 10 ? ms.toFixed(1) : ms.toFixed(0)) + " ms";
  }
  function fmtAge(s) {
    if (s === null || s === undefined) return "never";
    if (s < 90) return Math.round(s) + " s";
    if (s < 5400) return Math.round(s / 60) + " min";
    return (s / 3600).toFixed(1) + " h";
  }
  function fill(tbody, rows, cols) {
    tbody.replaceChildren();
    if (!rows.length) {
      var tr = el("tr"), td = el("td", "empty", "none");
      td.colSpan = cols; tr.appendChild(td); tbody.appendChild(tr); return;
    }
    rows.forEach(function (cells) {
      var tr = el("tr");
      cells.forEach(function (c) { tr.appendChild(el("td", null, c)); });
      tbody.appendChild(tr);
    });
  }

  // One SVG line chart: series = [{cls, values}], y from 0 to the largest value.
  function chart(svg, series, fmt) {
    var w = 300, h = 90, max = 0;
    series.forEach(function (s) { s.values.forEach(function (v) { if (v > max) max = v; }); });
    svg.replaceChildren();
    [0.5, 1].forEach(function (f) {
      var l = document.createElementNS(SVG, "line");
      l.setAttribute("class", "grid-line");
      l.setAttribute("x1", "0"); l.setAttribute("x2", String(w));
      l.setAttribute("y1", String(h - f * (h - 10))); l.setAttribute("y2", String(h - f * (h - 10)));
      svg.appendChild(l);
    });
    var t = document.createElementNS(SVG, "text");
    t.setAttribute("x", "2"); t.setAttribute("y", "9");
    t.textContent = max ? fmt(max) : "0";
    svg.appendChild(t);
    series.forEach(function (s) {
      if (s.values.length < 2) return;
      var pts = s.values.map(function (v, i) {
        var x = (i + POINTS - s.values.length) * w / (POINTS - 1);
        var y = h - (max ? v / max : 0) * (h - 10);
        return x.toFixed(1) + "," + y.toFixed(1);
      });
      var p = document.createElementNS(SVG, "polyline");
      p.setAttribute("class", s.cls);
      p.setAttribute("points", pts.join(" "));
      svg.appendChild(p);
    });
  }

  // Quantile over the buckets added since the last poll (upper bounds, like /admin/summary).
  function quantile(bounds, counts, q) {
    var total = counts.reduce(function (a, b) { return a + b; }, 0);
    if (!total) return null;
    var want = q * total, cum = 0;
    for (var i = 0; i < counts.length; i++) {
      cum += counts[i];
      if (cum >= want) return i < bounds.length ? bounds[i] : bounds[bounds.length - 1];
    }
    return null;
  }

  function drawTraffic(s) {
    var dt = prev ? s.time - prev.time : 0;
    var rate = prev && dt > 0 ? Math.max(0, s.requests - prev.requests) / dt : null;
    $("rate").textContent = rate === null ? "–" : rate.toFixed(rate < 10 ? 1 : 0);
    $("requests").textContent = String(s.requests);
    $("workers").textContent = String(s.workers);
    if (rate !== null) push(history.rate, rate);
    chart($("chart-rate"), [{ cls: "s-rate", values: history.rate }],
      function (v) { return v.toFixed(1) + "/s"; });

    var lb = s.latency_buckets || { bounds: [], counts: [] }, qs = s.latency_s || {};
    var win = null;
    if (prev && prev.latency_buckets && prev.latency_buckets.counts.length === lb.counts.length) {
      win = lb.counts.map(function (c, i) { return Math.max(0, c - prev.latency_buckets.counts[i]); });
    }
    ["p50", "p95", "p99"].forEach(function (k) {
      var q = Number(k.slice(1)) / 100;
      var v = win ? quantile(lb.bounds, win, q) : null;
      $(k).textContent = fmtMs(v === null ? qs[k] : v);
      if (prev) push(history[k], v === null ? 0 : v);
    });
    chart($("chart-latency"), ["p50", "p95", "p99"].map(function (k) {
      return { cls: "s-" + k, values: history[k] };
    }), fmtMs);
  }

  function drawStatus(s) {
    var rows = [], totals = { "2xx": 0, "3xx": 0, "4xx": 0, "5xx": 0 }, all = 0;
    Object.keys(s.status || {}).sort().forEach(function (route) {
      var m = s.status[route];
      rows.push([route].concat(CLASSES.map(function (c) { return m[c] || 0; })));
      CLASSES.forEach(function (c) { totals[c] += m[c] || 0; all += m[c] || 0; });
    });
    fill($("status").tBodies[0], rows, 5);
    var bar = $("status-bar");
    bar.replaceChildren();
    CLASSES.forEach(function (c) {
      if (!totals[c]) return;
      var seg = el("span", "c-" + c);
      seg.style.width = (100 * totals[c] / all).toFixed(2) + "%";  // CSSOM: allowed by the CSP
      seg.title = c + ": " + totals[c];
      bar.appendChild(seg);
    });
  }

  function drawAuth(s) {
    var auth = s.auth || {}, dt = prev ? s.time - prev.time : 0, rows = [];
    Object.keys(auth).forEach(function (k) {
      if (authOrder.indexOf(k) < 0) { authOrder.push(k); history.auth[k] = []; }
    });
    authOrder.forEach(function (k) {
      var per = prev && dt > 0 ? Math.max(0, (auth[k] || 0) - ((prev.auth || {})[k] || 0)) / dt : null;
      if (per !== null) push(history.auth[k], per);
      rows.push([k, auth[k] || 0, per === null ? "–" : per.toFixed(1)]);
    });
    fill($("auth").tBodies[0], rows, 3);
    chart($("chart-auth"), authOrder.map(function (k, i) {
      return { cls: "s-" + (i % 6), values: history.auth[k] };
    }), function (v) { return v.toFixed(1) + "/s"; });
    var legend = $("auth-legend");
    legend.replaceChildren();
    authOrder.forEach(function (k, i) { legend.appendChild(el("span", "s-" + (i % 6), k)); });
  }

  function drawLists(s) {
    var routes = $("routes");
    routes.replaceChildren();
    (s.routes || []).forEach(function (r) { routes.appendChild(el("li", "route", r)); });
    var targets = $("targets");
    targets.replaceChildren();
    (s.upstreams || []).forEach(function (u) {
      targets.appendChild(el("li", "upstream-name", u.name + " (" + u.balancer + ")"));
      u.targets.forEach(function (t) {
        var state = t.healthy === true ? "healthy" : t.healthy === false ? "down" : "unknown";
        var li = el("li", "target " + state);
        li.dataset.url = t.url;
        li.appendChild(el("span", "dot"));
        li.appendChild(el("span", "url", t.url));
        li.appendChild(el("span", "state", state));
        targets.appendChild(li);
      });
    });
    fill($("keysets").tBodies[0], (s.providers || []).map(function (p) {
      return [p.name + (p.last_error ? " (error: " + p.last_error + ")" : ""), p.keys,
        (p.kids || []).join(", "), fmtAge(p.age_s)];
    }), 4);
    fill($("top-refused").tBodies[0], (s.top_refused || []).slice(0, 10).map(function (c) {
      return [c.client, c.count];
    }), 2);
    var rl = [];
    Object.keys(s.ratelimit || {}).sort().forEach(function (route) {
      Object.keys(s.ratelimit[route]).sort().forEach(function (limit) {
        var r = s.ratelimit[route][limit];
        rl.push([route, limit, r.limited || 0, r.allowed || 0, r.store_error || 0]);
      });
    });
    fill($("ratelimit").tBodies[0], rl, 5);
    drawDetections($("detections"), s.detections);
  }

  // The summary has no detections key until detection lands; then a list of events or a map
  // of counts, shown as lines either way.
  function drawDetections(box, det) {
    box.replaceChildren();
    var lines = [];
    if (Array.isArray(det)) {
      lines = det.slice(0, 10).map(function (x) {
        return typeof x === "object" && x !== null
          ? ["kind", "action", "route", "client", "score"].filter(function (k) { return k in x; })
            .map(function (k) { return k + "=" + x[k]; }).join(" ") || JSON.stringify(x)
          : String(x);
      });
    } else if (det && typeof det === "object") {
      lines = Object.keys(det).sort().map(function (k) {
        var v = det[k];
        return k + ": " + (typeof v === "object" && v !== null ? JSON.stringify(v) : v);
      });
    }
    box.className = lines.length ? "" : "muted";
    if (!lines.length) { box.textContent = "none"; return; }
    lines.forEach(function (l) { box.appendChild(el("div", null, l)); });
  }

  function drawDenials(d) {
    fill($("denials").tBodies[0], (d.denials || []).map(function (x) {
      return [new Date(x.time * 1000).toLocaleTimeString(), x.status, x.route, x.outcome,
        x.client];
    }), 5);
  }

  function get(path) {
    return fetch(path, { credentials: "same-origin", cache: "no-store" }).then(function (r) {
      if (r.status === 401) { window.location.assign("/"); throw new Error("signed out"); }
      if (!r.ok) throw new Error(path + ": HTTP " + r.status);
      return r.json();
    });
  }

  function poll() {
    Promise.all([get("/admin/summary"), get("/admin/denials?limit=15")]).then(function (got) {
      var s = got[0];
      drawTraffic(s); drawStatus(s); drawAuth(s); drawLists(s); drawDenials(got[1]);
      prev = s;
      var u = $("updated");
      u.className = "muted";
      u.textContent = "updated " + new Date(s.time * 1000).toLocaleTimeString();
    }).catch(function (e) {
      var u = $("updated");
      u.className = "stale";
      u.textContent = "no answer from the admin listener (" + e.message + ")";
    }).then(function () { window.setTimeout(poll, POLL_MS); });
  }

  document.addEventListener("DOMContentLoaded", poll);
})();
