/* Live views: one Socket.IO connection per tab, page subscriptions, throttled updates of every widget.
 *
 * A page hands its subscriptions (the "live-subs" store) to setSubscriptions. A device subscription maps
 * keys to what shows them: graphs (line charts, extended in place), values (text cells), gauges and stats
 * (Plotly indicators, a stat's sparkline extended in place); "devices" maps device ids to status badges;
 * "alerts" carries alert lists and/or the alerts grid. Each target is redrawn at most every THROTTLE_MS
 * with what arrived meanwhile: nothing refetches history, and a burst costs one redraw per target. */
(function () {
  "use strict";
  var THROTTLE_MS = 100; // about 10 updates per second per widget
  var MAX_POINTS = 3000; // live charts keep this many points, older ones scroll out
  var SPARK_POINTS = 60;
  var state = {
    socket: null, subs: [], pending: {}, last: {}, timers: {}, subscribed: 0, alertLists: {}, draws: {}, frame: 0,
    sync: {}, syncTimer: 0
  };
  var STATUS_COLORS = { online: "success", offline: "secondary", error: "danger" };
  var SEVERITY_CLASS = { critical: "text-danger-emphasis", warning: "text-warning-emphasis", info: "text-info-emphasis" };

  // The browser's zone, for the server (every request carries it); pages draw in the user's zone
  // (their profile's, else this one), which the shell names in #wb-zone.
  try {
    document.cookie = "wb_tz=" + Intl.DateTimeFormat().resolvedOptions().timeZone + "; path=/; SameSite=Lax";
  } catch (err) { /* no Intl: the server uses UTC */ }
  var formatters = {};

  function zone() {
    var el = document.getElementById("wb-zone");
    return (el && el.getAttribute("data-zone")) || "UTC";
  }

  // An instant (ISO with offset) as wall-clock time in the user's zone, as the server draws charts.
  function wall(iso) {
    var d = new Date(iso), z = zone();
    if (isNaN(d.getTime())) { return iso; }
    var f = formatters[z] || (formatters[z] = new Intl.DateTimeFormat("en-CA", {
      timeZone: z, year: "numeric", month: "2-digit", day: "2-digit",
      hour: "2-digit", minute: "2-digit", second: "2-digit", hourCycle: "h23"
    }));
    var p = {};
    f.formatToParts(d).forEach(function (x) { p[x.type] = x.value; });
    var ms = String(d.getUTCMilliseconds());
    while (ms.length < 3) { ms = "0" + ms; }
    return p.year + "-" + p.month + "-" + p.day + " " + p.hour + ":" + p.minute + ":" + p.second + "." + ms;
  }

  function showTime(iso) { return iso ? wall(iso).slice(0, 19) : "—"; }

  function list(x) { return x === undefined || x === null ? [] : [].concat(x); }

  function setProps(id, props) {
    if (window.dash_clientside && window.dash_clientside.set_props && document.getElementById(id)) {
      window.dash_clientside.set_props(id, props);
    }
  }

  // The Plotly graph div inside a dcc.Graph (null until Plotly has drawn it).
  function plotOf(id) {
    var el = document.getElementById(id);
    if (!el || !window.Plotly) { return null; }
    var gd = el.classList.contains("js-plotly-plot") ? el : el.querySelector(".js-plotly-plot");
    return gd && gd.data ? gd : null;
  }

  function connect() {
    if (state.socket) { return state.socket; }
    // The session cookie authenticates; websocket only: no long-polling hop on the latency path.
    var socket = window.io({ transports: ["websocket"] });
    socket.on("connect", function () { wireSubs().forEach(subscribe); });
    socket.on("telemetry", onTelemetry);
    socket.on("device_status", onStatus);
    socket.on("alert", onAlert);
    socket.on("alert_update", onAlertUpdate);
    state.socket = socket;
    return socket;
  }

  function wire(sub) {
    if (sub.type === "device") { return { type: "device", device_id: sub.device_id, keys: sub.keys || [] }; }
    if (sub.type === "alerts") { return { type: "alerts", severity: sub.severity || [] }; }
    return { type: sub.type };
  }

  // One server subscription per distinct wire message (two widgets on one device share it).
  function wireSubs() {
    var seen = {}, out = [];
    state.subs.forEach(function (s) {
      var w = wire(s), k = JSON.stringify(w);
      if (!seen[k]) { seen[k] = true; out.push(w); }
    });
    return out;
  }

  function subscribe(w) {
    // The ack counts confirmed subscriptions: tests and the benchmark wait for it before publishing.
    state.socket.emit("subscribe", w, function (ack) { if (ack && ack.ok) { state.subscribed += 1; } });
  }

  function setSubscriptions(subs) {
    var socket = connect();
    if (socket.connected) { wireSubs().forEach(function (w) { socket.emit("unsubscribe", w); }); }
    Object.keys(state.timers).forEach(function (id) { clearTimeout(state.timers[id]); });
    state.timers = {}; state.pending = {}; state.alertLists = {}; state.draws = {};
    state.subs = subs || [];
    state.subscribed = 0;
    state.subs.forEach(function (s) {
      list(s.lists).forEach(function (l) { state.alertLists[l.id] = l; });
    });
    if (socket.connected) { wireSubs().forEach(subscribe); }
  }

  // Run flushOne now if the target was not drawn in the last THROTTLE_MS, else once when that time is up.
  function schedule(id, flushOne) {
    var now = performance.now();
    var due = (state.last[id] || 0) + THROTTLE_MS;
    if (now >= due && !state.timers[id]) { state.last[id] = now; flushOne(); return; }
    if (!state.timers[id]) {
      state.timers[id] = setTimeout(function () {
        state.timers[id] = null; state.last[id] = performance.now(); flushOne();
      }, Math.max(0, due - now));
    }
  }

  function pendingPoints(id) { return state.pending[id] || (state.pending[id] = { x: [], y: [], last: null }); }

  function takePending(id) { var p = state.pending[id]; delete state.pending[id]; return p; }

  // Charts are drawn in the next animation frame, after the values' text is in: a Plotly redraw takes
  // milliseconds, and the text must not wait for it (nor a hidden tab draw at all). A draw reads what is
  // pending when it runs, so points that arrive before the frame join it.
  function drawSoon(id, draw) {
    state.draws[id] = draw;
    if (!state.frame) {
      state.frame = window.requestAnimationFrame(function () {
        var draws = state.draws; state.draws = {}; state.frame = 0;
        Object.keys(draws).forEach(function (k) {
          try { draws[k](); } catch (err) { /* the chart left the page */ }
        });
      });
    }
  }

  function queuePoints(graphId, ev) {
    var p = pendingPoints(graphId);
    ev.points.forEach(function (pt) { p.x.push(wall(pt[0])); p.y.push(pt[1]); });
    schedule(graphId, function () { drawSoon(graphId, function () {
      var q = takePending(graphId);
      if (!q || !q.x.length) { return; }
      var gd = plotOf(graphId);
      // Plotly.extendTraces on the drawn chart: no React render, no figure rebuild.
      if (gd) { window.Plotly.extendTraces(gd, { x: [q.x], y: [q.y] }, [0], MAX_POINTS); }
      else { setProps(graphId, { extendData: [{ x: [q.x], y: [q.y] }, [0], MAX_POINTS] }); }
    }); });
  }

  function queueIndicator(graphId, ev, spark) {
    var p = pendingPoints(graphId);
    p.last = ev.value;
    if (spark) { ev.points.forEach(function (pt) { p.x.push(wall(pt[0])); p.y.push(pt[1]); }); }
    schedule(graphId, function () { drawSoon(graphId, function () {
      var q = takePending(graphId);
      var gd = plotOf(graphId);
      if (!q || !gd || typeof q.last !== "number") { return; }
      var update = { value: [q.last] };
      var axis = gd.data[0].gauge && gd.data[0].gauge.axis;
      if (axis && axis.range && q.last > axis.range[1]) { update["gauge.axis.range"] = [[axis.range[0], q.last * 1.5]]; }
      window.Plotly.restyle(gd, update, [0]);
      if (spark && q.x.length && gd.data.length > 1) {
        window.Plotly.extendTraces(gd, { x: [q.x], y: [q.y] }, [1], SPARK_POINTS);
      }
    }); });
  }

  // Tell Dash what the script already wrote, after the current task: the browser paints the new text
  // first, and Dash's store and React catch up once per task, not once per cell.
  function syncDash(id, props) {
    state.sync[id] = Object.assign(state.sync[id] || {}, props);
    if (!state.syncTimer) {
      state.syncTimer = setTimeout(function () {
        var sync = state.sync; state.sync = {}; state.syncTimer = 0;
        Object.keys(sync).forEach(function (k) { setProps(k, sync[k]); });
      }, 0);
    }
  }

  // Write the DOM at once (a busy renderer must not delay a value), then tell Dash so its state agrees.
  function text(id, value) {
    var el = document.getElementById(id);
    // Change React's own text node in place, so React keeps tracking the node it rendered.
    if (el && el.firstChild && el.firstChild.nodeType === 3) { el.firstChild.nodeValue = value; }
    else if (el) { el.textContent = value; }
    syncDash(id, { children: value });
  }

  // As timefmt.number: 4 significant digits (integers as they are).
  function format(value) {
    if (value === null || value === undefined) { return "—"; }
    if (typeof value !== "number" || !isFinite(value)) { return String(value); }
    if (Number.isInteger(value) && Math.abs(value) < 1e15) { return String(value); }
    var m = value ? Math.floor(Math.log10(Math.abs(value))) : 0;
    if (m >= 15 || m < -4) { return value.toExponential(2); }
    var t = value.toFixed(Math.max(0, 3 - m));
    return t.indexOf(".") >= 0 ? t.replace(/0+$/, "").replace(/\.$/, "") : t;
  }

  function queueValue(target, ev) {
    var id = target.value;
    state.pending[id] = ev;
    schedule(id, function () {
      var e = takePending(id);
      if (!e) { return; }
      text(target.value, format(e.value));
      if (target.quality) { text(target.quality, e.quality === null ? "—" : String(e.quality)); }
      if (target.time) { text(target.time, showTime(e.timestamp)); }
    });
  }

  // Units as users write them (as timefmt.UNITS).
  var UNITS = { C: "°C", degC: "°C", "deg C": "°C", F: "°F", degF: "°F", "m3/h": "m³/h", "m3/s": "m³/s",
    m3: "m³", m2: "m²", "Nm3/h": "Nm³/h", um: "µm", us: "µs", ohm: "Ω", pct: "%", percent: "%" };
  function unit(u) { return u ? (UNITS[u.trim()] || u.trim()) : ""; }

  function td(children, extra) {
    return { type: "Td", namespace: "dash_html_components", props: Object.assign({ children: children }, extra || {}) };
  }

  // A key the device never sent before the page loaded: its row joins the latest-values table live.
  function queueNewKey(s, ev) {
    s.fresh = s.fresh || {};
    s.fresh[ev.key] = ev;
    schedule(s.new_keys, function () {
      var rows = Object.keys(s.fresh).sort().map(function (k, i) {
        var e = s.fresh[k];
        return { type: "Tr", namespace: "dash_html_components", props: { children: [
          td(k),
          td(format(e.value), { id: "lv-new-" + i, className: "wb-live-value", "data-key": k }),
          td(unit(e.unit)),
          td(e.quality === null || e.quality === undefined ? "—" : String(e.quality)),
          td(showTime(e.timestamp), { className: "small" })
        ] } };
      });
      setProps(s.new_keys, { children: rows });
    });
  }

  function onTelemetry(ev) {
    state.subs.forEach(function (s) {
      if (s.type !== "device" || s.device_id !== ev.device_id) { return; }
      var k = ev.key;
      if (s.new_keys && !(s.values && s.values[k])) { queueNewKey(s, ev); }
      list(s.values && s.values[k]).forEach(function (t) { queueValue(t, ev); });
      list(s.graphs && s.graphs[k]).forEach(function (g) { queuePoints(g, ev); });
      list(s.gauges && s.gauges[k]).forEach(function (g) { queueIndicator(g, ev, false); });
      list(s.stats && s.stats[k]).forEach(function (g) { queueIndicator(g, ev, true); });
    });
  }

  function showStatus(id, status) {
    var color = STATUS_COLORS[status] || "warning";
    var el = document.getElementById(id);
    if (el) {
      if (el.firstChild && el.firstChild.nodeType === 3) { el.firstChild.nodeValue = status; } else { el.textContent = status; }
      el.className = el.className.replace(/\bbg-\w+/, "bg-" + color);
    }
    syncDash(id, { children: status, color: color });
  }

  function queueStatus(id, status) {
    state.pending[id] = status;
    schedule(id, function () { var s = takePending(id); if (s) { showStatus(id, s); } });
  }

  function onStatus(ev) {
    state.subs.forEach(function (s) {
      if (s.type === "devices" && s.statuses) { list(s.statuses[ev.device_id]).forEach(function (id) { queueStatus(id, ev.status); }); }
      if (s.type === "device" && s.device_id === ev.device_id && s.status) { queueStatus(s.status, ev.status); }
    });
  }

  // An alert-list widget: its recent alerts, newest first, filtered by severity and status (its selects),
  // re-rendered from its items (same markup as widgets._alert_line), through Dash so React owns the nodes.
  // An "Ack" button acknowledges through the page's "wal-ack" store (a server callback, rules.alerts.change;
  // a store draws no element, so set_props finds it in Dash's layout, not the DOM).
  var OPEN = { active: true, acknowledged: true };

  function el(type, props) { return { type: type, namespace: "dash_html_components", props: props }; }

  function alertLine(item, l) {
    var children = [
      el("Span", { className: SEVERITY_CLASS[item.severity] || "", children: "[" + item.severity + "] " }),
      item.message || "",
      el("Span", { className: "small text-body-secondary", children: " " + item.status })
    ];
    if (l.may_ack && item.status === "active") {
      children.push(el("Button", { className: "btn btn-sm btn-warning py-0 ms-2 wb-nodrag", "data-ack": item.id, children: "Ack" }));
    }
    return el("Li", { className: "list-group-item py-1", "data-alert": item.id, children: children });
  }

  var NO_ALERTS = el("Li", { className: "list-group-item py-1 text-body-secondary", children: "No matching alerts." });

  function shown(item, l) {
    var status = l.status || "";
    if (status === "open" ? !OPEN[item.status] : (status && item.status !== status)) { return false; }
    return !l.severity || item.severity === l.severity;
  }

  function drawList(l) {
    schedule(l.id, function () {
      var items = l.items.filter(function (i) { return shown(i, l); }).slice(0, l.limit || 10);
      setProps(l.id, { children: items.length ? items.map(function (i) { return alertLine(i, l); }) : [NO_ALERTS] });
    });
  }

  document.addEventListener("change", function (e) {
    var select = e.target.closest && e.target.closest("select[data-alert-filter]");
    var l = select && state.alertLists[select.getAttribute("data-list")];
    if (!l) { return; }
    l[select.getAttribute("data-alert-filter")] = select.value;
    drawList(l);
  });

  document.addEventListener("click", function (e) {
    var button = e.target.closest && e.target.closest("[data-ack]");
    if (!button || !window.dash_clientside || !window.dash_clientside.set_props) { return; }
    button.disabled = true;
    window.dash_clientside.set_props("wal-ack", { data: { id: button.getAttribute("data-ack"), at: Date.now() } });
  });

  function onAlert(ev) {
    Object.keys(state.alertLists).forEach(function (id) {
      var l = state.alertLists[id];
      if (l.device_id && l.device_id !== ev.device_id) { return; }
      var item = { id: String(ev.id), severity: ev.severity || "info", message: ev.message || "", status: ev.status || "active", device_id: ev.device_id };
      l.items = [item].concat(l.items.filter(function (i) { return i.id !== item.id; })).slice(0, l.keep || 30);
      drawList(l);
    });
    state.subs.forEach(function (s) {
      if (s.type !== "alerts" || !s.grid) { return; }
      var row = Object.assign({ status: "active", created_at: ev.timestamp }, ev, { time: showTime(ev.timestamp) });
      setProps(s.grid, { rowTransaction: { add: [row], addIndex: 0 } });
    });
  }

  function onAlertUpdate(ev) {
    Object.keys(state.alertLists).forEach(function (id) {
      var l = state.alertLists[id], changed = false;
      l.items.forEach(function (i) {
        if (i.id === String(ev.id)) { changed = true; i.status = ev.status; } // the filter decides if it shows
      });
      if (changed) { drawList(l); }
    });
    state.subs.forEach(function (s) {
      if (s.type !== "alerts" || !s.grid || !window.dash_ag_grid) { return; }
      try {
        var api = window.dash_ag_grid.getApi(s.grid);
        var node = api && api.getRowNode(String(ev.id));
        if (node) { node.setData(Object.assign({}, node.data, { status: ev.status })); }
      } catch (err) { /* the grid is not mounted (page changed) */ }
    });
  }

  // The chart menu of a dashboard widget: what its figures show, as CSV (time in the user's zone, series
  // named with key and unit, one row per point drawn, live points included) or as PNG.
  function csvCell(v) {
    var t = v === null || v === undefined ? "" : String(v);
    return /[",\n]/.test(t) ? '"' + t.replace(/"/g, '""') + '"' : t;
  }

  function widgetCsv(plots) {
    var rows = [["time (" + zone() + ")", "series", "value"]];
    plots.forEach(function (gd) {
      gd.data.forEach(function (trace) {
        if (trace.type === "indicator") { rows.push(["", trace.title && trace.title.text || "value", trace.value]); return; }
        (trace.x || []).forEach(function (x, i) { rows.push([x, trace.name || "", (trace.y || [])[i]]); });
      });
    });
    return rows.map(function (r) { return r.map(csvCell).join(","); }).join("\n") + "\n";
  }

  function save(name, url) {
    var a = document.createElement("a");
    a.href = url; a.download = name;
    document.body.appendChild(a); a.click(); a.remove();
  }

  document.addEventListener("click", function (e) {
    var item = e.target.closest && e.target.closest(".wb-export");
    var m = item && /^w-(.+)-(csv|png)$/.exec(item.id || "");
    var card = m && document.getElementById("widget-" + m[1]);
    if (!card || !window.Plotly) { return; }
    var plots = Array.prototype.filter.call(card.querySelectorAll(".js-plotly-plot"), function (gd) { return gd.data; });
    if (!plots.length) { return; }
    var title = (card.querySelector(".wb-widget-title") || {}).textContent || "chart";
    var base = title.replace(/[^\w.-]+/g, "_");
    if (m[2] === "csv") {
      save(base + ".csv", URL.createObjectURL(new Blob([widgetCsv(plots)], { type: "text/csv" })));
      return;
    }
    window.Plotly.toImage(plots[0], { format: "png" }).then(function (url) { save(base + ".png", url); });
  });

  // Zoom by drag on a dashboard chart: the chosen span becomes the dashboard's range, in the URL.
  function navigate(search) {
    window.history.pushState({}, "", window.location.pathname + search);
    window.dispatchEvent(new CustomEvent("_dashprivate_pushstate"));
  }

  function onZoom(e) {
    var a = e["xaxis.range[0]"], b = e["xaxis.range[1]"];
    if (!a || !b) { return; }
    var local = function (t) { return String(t).replace(" ", "T").slice(0, 16); };
    navigate("?from=" + encodeURIComponent(local(a)) + "&to=" + encodeURIComponent(local(b)));
  }

  function hookZoom() {
    document.querySelectorAll("#dashboard-grid .js-plotly-plot").forEach(function (gd) {
      if (gd.__wbZoom || !gd.on) { return; }
      gd.__wbZoom = true;
      gd.on("plotly_relayout", onZoom);
    });
  }
  setInterval(hookZoom, 500);

  // Dash 4's dropdown keeps a hidden (aria-hidden) input in the tab order; the dropdown's own button
  // takes focus, so that input leaves the tab order (axe: aria-hidden-focus).
  function untabHidden(root) {
    (root.querySelectorAll ? root : document).querySelectorAll(".dash-dropdown-focus-target").forEach(function (el) {
      if (el.getAttribute("tabindex") !== "-1") { el.setAttribute("tabindex", "-1"); }
    });
  }
  if (window.MutationObserver) {
    new MutationObserver(function () { untabHidden(document); })
      .observe(document.documentElement, { childList: true, subtree: true });
  }

  window.wbLive = { setSubscriptions: setSubscriptions, connect: connect, state: state, wall: wall, format: format };
  window.dash_clientside = window.dash_clientside || {};
  window.dash_clientside.wb = {
      subscribe: function (subs) { setSubscriptions(subs || []); return ""; },
      fitPlots: function () {
        // After react-grid-layout's 200 ms size transition, so the charts measure the cell's final size.
        setTimeout(function () {
          if (!window.Plotly) { return; }
          document.querySelectorAll("#builder-canvas .js-plotly-plot").forEach(function (gd) { window.Plotly.Plots.resize(gd); });
        }, 250);
        return "";
      },
      theme: function (dark) {
        var theme = dark ? "dark" : "light";
        document.documentElement.setAttribute("data-bs-theme", theme);
        try { localStorage.setItem("wb-theme", JSON.stringify(theme)); } catch (err) { /* private mode */ }
        return theme;
      }
  };
})();
