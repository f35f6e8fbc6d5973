// The peer of jobrepo-bench's `peer` workload: graphile-worker (the version
// pinned in package.json, installed by `npm ci --prefix bench`) draining N
// no-op jobs from PostgreSQL.
//
//   node bench/graphile_bench.mjs --url URL --mode default|batched [--jobs N] [--timeout S]
//
// URL is an empty database (graphile-worker's schema is installed there).
// The jobs are added in one addJobs call before any worker runs; then the
// worker processes are started: each has loaded graphile-worker and is told
// to call run() at once. seconds and jobs_per_s are the drain, from the
// first job's start in any process until the jobs table is empty (as
// jobrepo-bench's Scheduler rate leaves out its start); start_seconds is
// graphile-worker's start before it (pool, schema check, LISTEN), and
// *_with_start count from the run() calls. Modes:
//   default: 1 process, concurrency 16, graphile-worker's defaults otherwise;
//   batched: 2 processes, each concurrency 16, localQueue of 500 jobs and
//            batched completion (completeJobBatchDelay and failJobBatchDelay
//            0: the batching its performance page describes).
// Prints one JSON line; on failure one line on stderr and a non-zero exit.
// No worker process outlives this one: they are killed on every exit path,
// and each exits by itself when its parent goes away.
import { fork } from "node:child_process";
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";

const CONCURRENCY = 16;
const MODES = {
  default: { processes: 1, preset: undefined },
  batched: {
    processes: 2,
    preset: { worker: { localQueue: { size: 500 }, completeJobBatchDelay: 0, failJobBatchDelay: 0 } },
  },
};
const POLL_MS = 10; // how often the parent checks whether the queue is empty
const TASK = "noop";

// CLOCK_MONOTONIC in seconds: the same clock in every process of the machine.
function now() {
  return Number(process.hrtime.bigint()) / 1e9;
}

// An error whose message is the whole story: printed as one line, no stack.
class Failure extends Error {}

function fail(message) {
  throw new Failure(message);
}

function oneLine(error) {
  const text = error instanceof Error ? error.message || String(error) : String(error);
  return text.split("\n")[0].trim() || "unknown error";
}

async function loadWorker() {
  try {
    return await import("graphile-worker");
  } catch (error) {
    fail(`cannot load graphile-worker (${oneLine(error)}): run npm ci --prefix bench`);
  }
}

// graphile-worker logs through this: nothing, so that stdout is the one JSON
// line and the timing does not include console output.
function quietLogger(Logger) {
  return new Logger(() => () => {});
}

function parseArgs(argv) {
  const args = { url: "", mode: "", jobs: 10000, timeout: 120 };
  for (let i = 0; i < argv.length; i++) {
    const name = argv[i];
    const value = argv[i + 1];
    if (!["--url", "--mode", "--jobs", "--timeout"].includes(name)) fail(`unknown argument ${name}`);
    if (value === undefined) fail(`${name} needs a value`);
    i++;
    if (name === "--url") args.url = value;
    if (name === "--mode") args.mode = value;
    if (name === "--jobs" || name === "--timeout") {
      const number = Number(value);
      if (!(number > 0) || (name === "--jobs" && !Number.isInteger(number))) {
        fail(`${name}: "${value}" is not a positive ${name === "--jobs" ? "integer" : "number"}`);
      }
      args[name.slice(2)] = number;
    }
  }
  if (!args.url) fail("--url: give the URL of an empty PostgreSQL database");
  if (!MODES[args.mode]) fail(`--mode: "${args.mode}" is not default or batched`);
  return args;
}

// --- a worker process ------------------------------------------------------------

// Loads graphile-worker, says "ready", runs the workers on "go", stops on
// "stop". Errors go to the parent as one line.
async function workerMain(url, mode) {
  process.on("disconnect", () => process.exit(1)); // the parent is gone
  const send = (message) => process.connected && process.send(message);
  try {
    const { run, Logger } = await loadWorker();
    let runner;
    let first = true;
    const noop = async () => {
      if (first) {
        first = false;
        send({ first: now() });
      }
    };
    process.on("message", async (message) => {
      try {
        if (message === "go") {
          runner = await run({
            connectionString: url,
            concurrency: CONCURRENCY,
            logger: quietLogger(Logger),
            noHandleSignals: true,
            taskList: { [TASK]: noop },
            parsedCronItems: [],
            preset: MODES[mode].preset,
          });
          runner.promise.catch((error) => {
            send({ error: `worker: ${oneLine(error)}` });
            process.exit(1);
          });
        } else if (message === "stop") {
          if (runner) await runner.stop();
          process.exit(0);
        }
      } catch (error) {
        send({ error: `worker run: ${oneLine(error)}` });
        process.exit(1);
      }
    });
    send("ready");
  } catch (error) {
    send({ error: oneLine(error) });
    process.exit(1);
  }
}

// --- the parent ---------------------------------------------------------------------

const children = new Set();

function killChildren() {
  for (const child of children) child.kill("SIGKILL");
}

// Starts a worker process; resolves when it has loaded graphile-worker.
function startWorker(url, mode, onError, onFirst) {
  return new Promise((resolve, reject) => {
    const child = fork(fileURLToPath(import.meta.url), ["--worker", url, mode], {
      stdio: ["ignore", "ignore", "pipe", "ipc"],
    });
    children.add(child);
    let stderr = "";
    child.stderr.on("data", (data) => (stderr += data));
    child.on("message", (message) => {
      if (message === "ready") resolve(child);
      else if (message && message.first) onFirst(message.first);
      else if (message && message.error) {
        onError(message.error);
        reject(new Failure(message.error));
      }
    });
    child.on("exit", (code, signal) => {
      children.delete(child);
      if (code !== 0 && !child.stopping) {
        const why = stderr.trim().split("\n")[0] || (signal ? `killed by ${signal}` : `exit status ${code}`);
        onError(`worker process ended: ${why}`);
        reject(new Failure(`worker process ended: ${why}`));
      }
    });
    child.on("error", (error) => reject(new Failure(`cannot start a worker process: ${oneLine(error)}`)));
  });
}

function sleep(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

async function stopWorkers(workers) {
  const exited = workers.map((child) =>
    child.exitCode !== null || child.signalCode !== null
      ? Promise.resolve()
      : new Promise((resolve) => child.once("exit", resolve)),
  );
  for (const child of workers) {
    child.stopping = true;
    if (child.connected) child.send("stop");
  }
  // A graceful stop waits for the jobs in hand; past 10 s the processes are killed.
  await Promise.race([Promise.all(exited), sleep(10000)]);
  killChildren();
}

async function main() {
  const args = parseArgs(process.argv.slice(2));
  const { runMigrations, makeWorkerUtils, Logger } = await loadWorker();
  const version = JSON.parse(
    readFileSync(new URL("node_modules/graphile-worker/package.json", import.meta.url), "utf8"),
  ).version;
  const logger = quietLogger(Logger);
  const mode = MODES[args.mode];

  try {
    await runMigrations({ connectionString: args.url, logger });
  } catch (error) {
    fail(`runMigrations on the given --url: ${oneLine(error)}`);
  }
  const utils = await makeWorkerUtils({ connectionString: args.url, logger });
  try {
    const left = async () =>
      (await utils.withPgClient((client) => client.query("SELECT count(*)::int AS n FROM graphile_worker._private_jobs")))
        .rows[0].n;
    if ((await left()) !== 0) fail("--url: the database already has graphile-worker jobs; give an empty one");
    await utils.addJobs(Array.from({ length: args.jobs }, () => ({ identifier: TASK, payload: {} })));
    const added = await left();
    if (added !== args.jobs) fail(`addJobs: ${added} jobs in the queue, not ${args.jobs}`);

    let workerError = "";
    let firstJob = Infinity;
    const workers = await Promise.all(
      Array.from({ length: mode.processes }, () =>
        startWorker(
          args.url,
          args.mode,
          (e) => (workerError ||= e),
          (at) => (firstJob = Math.min(firstJob, at)),
        ),
      ),
    );
    // The clock: from the go to every worker process until the queue is
    // empty, checked with one cheap query every POLL_MS.
    const started = now();
    for (const child of workers) child.send("go");
    const deadline = started + args.timeout;
    let remaining = added;
    const empty = async () =>
      !(
        await utils.withPgClient((client) =>
          client.query("SELECT EXISTS (SELECT 1 FROM graphile_worker._private_jobs) AS any"),
        )
      ).rows[0].any;
    for (;;) {
      if (workerError) fail(workerError);
      if (await empty()) break;
      if (now() > deadline) {
        remaining = await left();
        fail(`timeout: ${remaining} of ${args.jobs} jobs left after ${args.timeout} s`);
      }
      await sleep(POLL_MS);
    }
    const ended = now();
    // The first job's message may still be on its way.
    for (let i = 0; i < 100 && !Number.isFinite(firstJob); i++) await sleep(10);
    if (!Number.isFinite(firstJob)) fail("the queue emptied, but no worker process said it ran a job");
    await stopWorkers(workers);
    if (workerError) fail(workerError);
    process.stdout.write(
      JSON.stringify({
        peer: "graphile-worker",
        version,
        mode: args.mode,
        processes: mode.processes,
        concurrency: CONCURRENCY,
        jobs: args.jobs,
        seconds: ended - firstJob,
        jobs_per_s: args.jobs / (ended - firstJob),
        start_seconds: firstJob - started,
        seconds_with_start: ended - started,
        jobs_per_s_with_start: args.jobs / (ended - started),
        node: process.version,
      }) + "\n",
    );
  } finally {
    await utils.release();
  }
}

if (process.argv[2] === "--worker") {
  workerMain(process.argv[3], process.argv[4]);
} else {
  for (const signal of ["SIGINT", "SIGTERM", "SIGHUP"]) {
    process.on(signal, () => {
      killChildren();
      process.stderr.write(`graphile_bench: stopped by ${signal}\n`);
      process.exit(1);
    });
  }
  process.on("exit", killChildren);
  main()
    .then(() => process.exit(0))
    .catch((error) => {
      killChildren();
      process.stderr.write(`graphile_bench: ${error instanceof Failure ? error.message : oneLine(error)}\n`);
      process.exit(1);
    });
}
