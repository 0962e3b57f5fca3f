// A Sparkplug B edge node from another implementation (Eclipse Tahu's sparkplug-client): births a node
// with a metric of its own and one device (NBIRTH then DBIRTH at once, the normal start-up order), answers
// a rebirth request, prints one JSON line per thing that happens; on a line "data <json>" from stdin it
// publishes DDATA with those metrics.
// Usage: node sparkplug_node.js BROKER_URL GROUP NODE DEVICE
"use strict";
const readline = require("readline");
const sparkplug = require("sparkplug-client");

const [serverUrl, groupId, edgeNode, device] = process.argv.slice(2);
const say = (what) => console.log(JSON.stringify(what));
const client = sparkplug.newClient({
  serverUrl, groupId, edgeNode, username: "", password: "", clientId: `tahu-${edgeNode}-${process.pid}`,
  version: "spBv1.0", keepalive: 5,
});

function birth() {
  const now = Date.now();
  client.publishNodeBirth({
    timestamp: now,
    metrics: [
      { name: "Node Control/Rebirth", type: "Boolean", value: false },
      { name: "Uptime", type: "Int32", value: 7 },
    ],
  });
  client.publishDeviceBirth(device, {
    timestamp: now,
    metrics: [
      { name: "Outlet Temp", type: "Float", value: 21.5, properties: { engUnit: { type: "String", value: "C" } } },
      { name: "Serial", type: "String", value: "TAHU-1" },
      { name: "Setpoint", type: "Double", value: 50.0 },
    ],
  });
  say({ event: "born" });
}

client.on("birth", birth);
client.on("ncmd", (payload) => {
  for (const metric of payload.metrics || []) {
    say({ event: "ncmd", name: metric.name, value: metric.value });
    if (metric.name === "Node Control/Rebirth" && metric.value) birth();
  }
});
client.on("dcmd", (dev, payload) => {
  for (const metric of payload.metrics || []) {
    say({ event: "dcmd", device: dev, name: metric.name, type: metric.type, value: metric.value });
  }
});
client.on("error", (err) => say({ event: "error", message: String(err) }));

readline.createInterface({ input: process.stdin }).on("line", (line) => {
  if (line.startsWith("data ")) {
    const values = JSON.parse(line.slice(5));
    const metrics = Object.entries(values).map(([name, value]) => ({ name, type: "Double", value }));
    client.publishDeviceData(device, { timestamp: Date.now(), metrics });
    say({ event: "published", metrics: Object.keys(values) });
  }
}).on("close", () => {
  client.stop();
  process.exit(0);
});
