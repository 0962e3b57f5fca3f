// A Modbus TCP server from another implementation (modbus-serial): serves the tables given as JSON,
// prints "ready" once listening, and one JSON line per write it receives.
// Usage: node modbus_server.js PORT '{"holding": {"0": 16712}, "input": {}, "coil": {}, "discrete": {}}'
"use strict";
const ModbusRTU = require("modbus-serial");

const port = Number(process.argv[2]);
const tables = JSON.parse(process.argv[3] || "{}");
for (const name of ["holding", "input", "coil", "discrete"]) tables[name] = tables[name] || {};
const word = (table, addr) => Number(tables[table][String(addr)] || 0);

const vector = {
  getHoldingRegister: (addr) => word("holding", addr),
  getInputRegister: (addr) => word("input", addr),
  getCoil: (addr) => Boolean(word("coil", addr)),
  getDiscreteInput: (addr) => Boolean(word("discrete", addr)),
  setRegister: (addr, value) => {
    tables.holding[String(addr)] = value;
    console.log(JSON.stringify({ write: "holding", address: addr, value }));
  },
  setCoil: (addr, value) => {
    tables.coil[String(addr)] = value ? 1 : 0;
    console.log(JSON.stringify({ write: "coil", address: addr, value: Boolean(value) }));
  },
};

const server = new ModbusRTU.ServerTCP(vector, { host: "127.0.0.1", port, unitID: 1 });
server.on("initialized", () => console.log("ready"));
server.on("socketError", (err) => console.error(String(err)));
process.stdin.on("end", () => server.close(() => process.exit(0)));
process.stdin.resume();
