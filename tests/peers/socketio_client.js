// A Socket.IO client from another implementation (socket.io-client 4): connects with a token, subscribes
// to alerts of the given severities, and prints one JSON line per thing that happens.
// Usage: node socketio_client.js URL TOKEN [SEVERITY,...]
"use strict";
const { io } = require("socket.io-client");

const [url, token, severities] = process.argv.slice(2);
const say = (what) => console.log(JSON.stringify(what));
const socket = io(url, { auth: { token }, transports: ["websocket"], reconnection: false });

socket.on("connect", () => {
  const wanted = severities ? { type: "alerts", severity: severities.split(",") } : { type: "alerts" };
  socket.emit("subscribe", wanted, (ack) => say({ event: "subscribed", ack }));
});
socket.on("connect_error", (err) => {
  say({ event: "connect_error", message: err.message });
  process.exit(0);
});
for (const name of ["alert", "alert_update", "auth_expired"]) {
  socket.on(name, (data) => say({ event: name, data }));
}
socket.on("disconnect", (reason) => {
  say({ event: "disconnect", reason });
  process.exit(0);
});
process.stdin.on("end", () => socket.close());
process.stdin.resume();
