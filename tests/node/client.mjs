// A Dragoman client in Node.js: proves the contract works from a language other than Python.
// It loads the .proto at run time (no generated code), calls Translate, TranslateStream and
// Summarize, and prints the three responses as one JSON object on stdout.
//
//   node tests/node/client.mjs ADDRESS [--source pt] [--target en] [TEXT ...]
//
// ADDRESS is host:port, or dns:///name:port for client-side balancing over a headless
// Kubernetes Service. gRPC failures print the status to stderr and exit 1.

import path from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";

import grpc from "@grpc/grpc-js";
import protoLoader from "@grpc/proto-loader";

const PROTO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../../protos");
const DEADLINE_MS = 60_000;

const { values: opts, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    source: { type: "string", default: "pt" },
    target: { type: "string", default: "en" },
  },
});
const [address, ...argTexts] = positionals;
if (!address) {
  console.error("usage: node client.mjs ADDRESS [--source pt] [--target en] [TEXT ...]");
  process.exit(2);
}
const texts = argTexts.length
  ? argTexts
  : ["O governo anunciou hoje novas medidas económicas.\n\nA oposição criticou o plano."];

const definition = protoLoader.loadSync("dragoman/v1/dragoman.proto", {
  includeDirs: [PROTO_ROOT],
  keepCase: true, // field names as in the .proto (target_language, not targetLanguage)
  longs: String,
  enums: String, // enum values by name ("SUMMARY_LENGTH_SHORT")
  defaults: true, // unset fields as their defaults, like every other gRPC runtime
});
const { Dragoman } = grpc.loadPackageDefinition(definition).dragoman.v1;

const client = new Dragoman(address, grpc.credentials.createInsecure(), {
  // Balance calls over every address the name resolves to (one per pod behind a headless
  // Service); the default, pick_first, would send everything to one pod.
  "grpc.service_config": JSON.stringify({ loadBalancingConfig: [{ round_robin: {} }] }),
});

const deadline = () => new Date(Date.now() + DEADLINE_MS);

function unary(method, request) {
  return new Promise((resolve, reject) => {
    client[method](request, { deadline: deadline() }, (err, response) =>
      err ? reject(err) : resolve(response),
    );
  });
}

function serverStream(method, request) {
  return new Promise((resolve, reject) => {
    const messages = [];
    const call = client[method](request, { deadline: deadline() });
    call.on("data", (message) => messages.push(message));
    call.on("error", reject);
    call.on("end", () => resolve(messages));
  });
}

try {
  const translateRequest = {
    texts,
    source_language: opts.source,
    target_language: opts.target,
  };
  const translate = await unary("Translate", translateRequest);
  const stream = await serverStream("TranslateStream", translateRequest);
  const summarize = await unary("Summarize", {
    text: texts.join("\n\n"),
    source_language: opts.source,
    length: "SUMMARY_LENGTH_SHORT",
  });
  process.stdout.write(JSON.stringify({ translate, stream, summarize }) + "\n");
} catch (err) {
  const code = grpc.status[err.code] ?? err.code;
  console.error(`gRPC error ${code}: ${err.details ?? err.message}`);
  process.exitCode = 1;
} finally {
  client.close();
}
