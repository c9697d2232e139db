// Braindrill's notebook cell for Node.js (JavaScript, and TypeScript once compiled): required
// before the cell's program (`node --require ./.braindrill/node_cell.js main.js`), it makes an
// uncaught exception or unhandled rejection what Python's is in a cell: one `error` output
// record (ename, evalue, the stack as its traceback; protocol.py's OUTPUT_MARK, with the
// execution's output token, which the engine writes in place of {{output_token}}), nothing on
// stderr, exit code 1.
"use strict";
const fs = require("fs");

const OUTPUT_MARK = "\x1ebraindrill-output "; // protocol.OUTPUT_MARK
const token = "{{output_token}}";

function report(error) {
  const isError = error instanceof Error;
  const ename = isError ? error.name : typeof error;
  let evalue;
  try {
    evalue = isError ? error.message : String(error);
  } catch (e) {
    evalue = "<unprintable>";
  }
  const stack = isError && typeof error.stack === "string" ? error.stack : `${ename}: ${evalue}`;
  const record = JSON.stringify({ output_type: "error", ename, evalue, traceback: stack.split("\n") });
  fs.writeSync(1, `${OUTPUT_MARK}${token} ${Buffer.byteLength(record)}\n${record}`);
  process.exit(1);
}

process.on("uncaughtException", report);
process.on("unhandledRejection", report);
