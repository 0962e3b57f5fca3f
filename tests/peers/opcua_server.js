// An OPC-UA server from another implementation (node-opcua): Double variables ns=1;s=NAME whose values
// follow stdin lines "set NAME VALUE", and a method ns=1;s=Plant.Scale on object ns=1;s=Plant; prints
// "ready ENDPOINT" once serving, one JSON line per write or call.
// Usage: node opcua_server.js PORT '{"Pump1.Pressure": 3.5, "Pump1.Flow": 100}'
"use strict";
const readline = require("readline");
const { OPCUAServer, DataType, Variant, StatusCodes } = require("node-opcua");

async function main() {
  const port = Number(process.argv[2]);
  const initial = JSON.parse(process.argv[3] || "{}");
  const server = new OPCUAServer({ port, resourcePath: "/peer", allowAnonymous: true });
  await server.initialize();
  const addressSpace = server.engine.addressSpace;
  const namespace = addressSpace.getOwnNamespace();
  const plant = namespace.addObject({
    nodeId: "s=Plant",
    browseName: "Plant",
    organizedBy: addressSpace.rootFolder.objects,
  });
  // A method commands may call: Plant.Scale(x) answers 2x and prints what it was called with.
  const scale = namespace.addMethod(plant, {
    nodeId: "s=Plant.Scale",
    browseName: "Scale",
    inputArguments: [{ name: "x", dataType: DataType.Double }],
    outputArguments: [{ name: "y", dataType: DataType.Double }],
  });
  scale.bindMethod((inputArguments, context, callback) => {
    const x = inputArguments[0].value;
    console.log(JSON.stringify({ call: "Scale", args: [x] }));
    callback(null, {
      statusCode: StatusCodes.Good,
      outputArguments: [{ dataType: DataType.Double, value: 2 * x }],
    });
  });
  const values = { ...initial };
  const variables = {};
  for (const name of Object.keys(values)) {
    variables[name] = namespace.addVariable({
      nodeId: `s=${name}`,
      browseName: name,
      componentOf: plant,
      dataType: DataType.Double,
      accessLevel: "CurrentRead | CurrentWrite",
      userAccessLevel: "CurrentRead | CurrentWrite",
      minimumSamplingInterval: 50,
      value: {
        get: () => new Variant({ dataType: DataType.Double, value: values[name] }),
        set: (variant) => {
          values[name] = variant.value;
          console.log(JSON.stringify({ write: name, value: variant.value }));
          return StatusCodes.Good;
        },
      },
    });
  }
  await server.start();
  console.log(`ready ${server.getEndpointUrl()}`);
  readline.createInterface({ input: process.stdin }).on("line", (line) => {
    const [verb, name, value] = line.trim().split(/\s+/);
    if (verb === "set" && name in values) {
      values[name] = Number(value);
      variables[name].touchValue();
    }
  }).on("close", async () => {
    await server.shutdown(0);
    process.exit(0);
  });
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
