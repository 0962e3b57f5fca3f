/* Live views: one Socket.IO connection per tab, page subscriptions, throttled chart/value updates. */
(function () {
  "use strict";
  var THROTTLE_MS = 100; // about 10 updates per second per chart or value
  var MAX_POINTS = 3000; // live charts keep this many points, older ones scroll out
  var state = { socket: null, subs: [], pending: {}, last: {}, timers: {}, subscribed: 0 };
  var STATUS_COLORS = { online: "success", offline: "secondary", error: "danger" };

  function setProps(id, props) {
    if (window.dash_clientside && window.dash_clientside.set_props && document.getElementById(id)) {
      window.dash_clientside.set_props(id, props);
    }
  }

  function connect() {
    if (state.socket) { return state.socket; }
    // The session cookie authenticates; websocket only: no long-polling hop on the latency path.
    var socket = window.io({ transports: ["websocket"] });
    socket.on("connect", function () { state.subs.forEach(subscribe); });
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

  function subscribe(sub) {
    // The ack counts confirmed subscriptions: tests and the benchmark wait for it before publishing.
    state.socket.emit("subscribe", wire(sub), function (ack) { if (ack && ack.ok) { state.subscribed += 1; } });
  }

  function setSubscriptions(subs) {
    var socket = connect();
    state.subs.forEach(function (s) { if (socket.connected) { socket.emit("unsubscribe", wire(s)); } });
    state.subs = subs || [];
    state.subscribed = 0;
    if (socket.connected) { state.subs.forEach(subscribe); }
  }

  function schedule(id, flushOne) {
    var now = performance.now();
    var due = (state.last[id] || 0) + THROTTLE_MS;
    if (now >= due) { state.last[id] = now; flushOne(); return; }
    if (!state.timers[id]) {
      state.timers[id] = setTimeout(function () {
        state.timers[id] = null; state.last[id] = performance.now(); flushOne();
      }, due - now);
    }
  }

  function queuePoints(graphId, points) {
    var p = state.pending[graphId] || (state.pending[graphId] = { x: [], y: [] });
    points.forEach(function (pt) { p.x.push(pt[0]); p.y.push(pt[1]); });
    schedule(graphId, function () {
      var q = state.pending[graphId]; delete state.pending[graphId];
      if (q && q.x.length) { setProps(graphId, { extendData: [{ x: [q.x], y: [q.y] }, [0], MAX_POINTS] }); }
    });
  }

  // Write the DOM at once (a busy renderer must not delay a value), then tell Dash so its state agrees.
  function text(id, value) {
    var el = document.getElementById(id);
    // Change React's own text node in place, so React keeps tracking the node it rendered.
    if (el && el.firstChild && el.firstChild.nodeType === 3) { el.firstChild.nodeValue = value; }
    else if (el) { el.textContent = value; }
    setProps(id, { children: value });
  }

  function format(value) {
    if (value === null || value === undefined) { return "—"; }
    if (typeof value === "number") { return Number.isInteger(value) ? String(value) : value.toFixed(3).replace(/0+$/, ""); }
    return String(value);
  }

  function queueValue(target, ev) {
    var key = target.value;
    state.pending[key] = ev;
    schedule(key, function () {
      var e = state.pending[key]; delete state.pending[key];
      if (!e) { return; }
      text(target.value, format(e.value));
      if (target.quality) { text(target.quality, e.quality === null ? "—" : String(e.quality)); }
      if (target.time) { text(target.time, e.timestamp.replace("T", " ").slice(0, 19)); }
    });
  }

  function onTelemetry(ev) {
    state.subs.forEach(function (s) {
      if (s.type !== "device" || s.device_id !== ev.device_id) { return; }
      var graphs = s.graphs && s.graphs[ev.key];
      if (graphs) { [].concat(graphs).forEach(function (g) { queuePoints(g, ev.points); }); }
      if (s.values && s.values[ev.key]) { queueValue(s.values[ev.key], ev); }
    });
  }

  function showStatus(id, status) {
    var color = STATUS_COLORS[status] || "warning";
    var el = document.getElementById(id);
    if (el) {
      if (el.firstChild && el.firstChild.nodeType === 3) { el.firstChild.nodeValue = status; } else { el.textContent = status; }
      el.className = el.className.replace(/\bbg-\w+/, "bg-" + color);
    }
    setProps(id, { children: status, color: color });
  }

  function onStatus(ev) {
    state.subs.forEach(function (s) {
      if (s.type === "devices" && s.statuses && s.statuses[ev.device_id]) { showStatus(s.statuses[ev.device_id], ev.status); }
      if (s.type === "device" && s.device_id === ev.device_id && s.status) { showStatus(s.status, ev.status); }
    });
  }

  function onAlert(ev) {
    state.subs.forEach(function (s) {
      if (s.type !== "alerts" || !s.grid) { return; }
      var row = Object.assign({ status: "active", created_at: ev.timestamp }, ev);
      setProps(s.grid, { rowTransaction: { add: [row], addIndex: 0 } });
    });
  }

  function onAlertUpdate(ev) {
    state.subs.forEach(function (s) {
      if (s.type !== "alerts" || !s.grid || !window.dash_ag_grid) { return; }
      try {
        var api = window.dash_ag_grid.getApi(s.grid);
        var node = api && api.getRowNode(String(ev.id));
        if (node) { node.setData(Object.assign({}, node.data, { status: ev.status })); }
      } catch (err) { /* the grid is not mounted (page changed) */ }
    });
  }

  window.wbLive = { setSubscriptions: setSubscriptions, connect: connect, state: state };
  window.dash_clientside = window.dash_clientside || {};
  window.dash_clientside.wb = {
      subscribe: function (subs) { setSubscriptions(subs || []); return ""; },
      theme: function (dark) {
        var theme = dark ? "dark" : "light";
        document.documentElement.setAttribute("data-bs-theme", theme);
        try { localStorage.setItem("wb-theme", JSON.stringify(theme)); } catch (err) { /* private mode */ }
        return theme;
      }
  };
})();
