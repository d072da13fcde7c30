// etcd_fanout.js - etcd's one-way watch fan-out, the comparison row of
// bench_propagation (issue 13: privmta's push -> all acked against etcd's
// put -> all watchers told, in the same run).
//
// usage: node etcd_fanout.js WATCHERS PUSHES [ETCD_BINARY]
//
// Starts a one-member etcd (Debian's etcd-server, 3.4) on 127.0.0.1 in a
// scratch directory, opens WATCHERS watches on one key, each on a
// connection of its own (as each agent has its own), through etcd's JSON
// gateway (POST /v3/watch, a stream of JSON results) with Node's own http
// module: no package to install. Then PUSHES times: put the key (a 2 KiB
// value, as the floor's message), time from just before the put to the
// last watcher holding the event. etcd's put is durable (fsync), as a
// privmta commit is; the watchers send nothing back (one way), where
// privmta's agents apply and acknowledge. Prints one line:
//   ETCD WATCHERS p50 MS p99 MS client CPU MS/put
// (the client's own CPU per put: Node shares the cores with etcd, as the
// benchmark's agents share them with the controller) and exits 0;
// anything else on stderr with a non-zero exit.
'use strict';
const http = require('http');
const net = require('net');
const os = require('os');
const fs = require('fs');
const path = require('path');
const { spawn } = require('child_process');

const WARMUP = 3; // puts before the measured ones, as the floor's

function die(msg) {
    process.stderr.write(`etcd_fanout: ${msg}\n`);
    process.exit(1);
}

function freePort() {
    return new Promise((resolve, reject) => {
        const s = net.createServer();
        s.on('error', reject);
        s.listen(0, '127.0.0.1', () => {
            const { port } = s.address();
            s.close(() => resolve(port));
        });
    });
}

const b64 = (s) => Buffer.from(s).toString('base64');

// POST PATH with JSON BODY on a connection of its own; resolves the reply.
function post(port, p, body) {
    return new Promise((resolve, reject) => {
        const req = http.request({ host: '127.0.0.1', port, path: p, method: 'POST', agent: false },
            (res) => {
                let data = '';
                res.on('data', (c) => (data += c));
                res.on('end', () => (res.statusCode === 200 ? resolve(data)
                    : reject(new Error(`${p}: HTTP ${res.statusCode} ${data}`))));
            });
        req.on('error', reject);
        req.end(JSON.stringify(body));
    });
}

// Waits until etcd answers, at most 20 s.
async function ready(port) {
    for (let i = 0; i < 200; i++) {
        try {
            await post(port, '/v3/kv/range', { key: b64('probe') });
            return;
        } catch (e) {
            await new Promise((r) => setTimeout(r, 100));
        }
    }
    die('etcd did not answer within 20 s');
}

// One watcher: resolves once its watch is created; calls onEvent(revision)
// for every put it is told of.
function watch(port, key, onEvent) {
    return new Promise((resolve, reject) => {
        const req = http.request({ host: '127.0.0.1', port, path: '/v3/watch', method: 'POST', agent: false },
            (res) => {
                if (res.statusCode !== 200)
                    return reject(new Error(`watch: HTTP ${res.statusCode}`));
                let buf = '';
                res.setEncoding('utf8');
                res.on('data', (chunk) => {
                    buf += chunk;
                    let nl;
                    while ((nl = buf.indexOf('\n')) >= 0) {
                        const line = buf.slice(0, nl);
                        buf = buf.slice(nl + 1);
                        if (!line.trim())
                            continue;
                        // a put's event names its revision; parsing all
                        // of the 2 KiB value's JSON 1000 times a put would
                        // be the client's time, not etcd's
                        const m = /"mod_revision":"(\d+)"/.exec(line);
                        if (m)
                            onEvent(Number(m[1]));
                        else if (JSON.parse(line).result?.created)
                            resolve(req);
                    }
                });
            });
        req.on('error', reject);
        // the gateway reads the stream's first message as the request
        req.write(JSON.stringify({ create_request: { key: b64(key) } }) + '\n');
    });
}

function pct(sorted, p) {
    return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)];
}

async function main() {
    const n = parseInt(process.argv[2], 10), pushes = parseInt(process.argv[3], 10);
    const bin = process.argv[4] || 'etcd';
    if (!(n > 0) || !(pushes > 0))
        die('usage: node etcd_fanout.js WATCHERS PUSHES [ETCD_BINARY]');
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'privmta-etcd.'));
    const client = await freePort(), peer = await freePort();
    const etcd = spawn(bin, [
        '--name', 'bench', '--data-dir', path.join(dir, 'data'),
        '--listen-client-urls', `http://127.0.0.1:${client}`,
        '--advertise-client-urls', `http://127.0.0.1:${client}`,
        '--listen-peer-urls', `http://127.0.0.1:${peer}`,
        '--initial-advertise-peer-urls', `http://127.0.0.1:${peer}`,
        '--initial-cluster', `bench=http://127.0.0.1:${peer}`,
        '--log-level', 'error',
    ], { stdio: ['ignore', 'ignore', 'pipe'] });
    let etcdErr = '';
    etcd.stderr.on('data', (c) => (etcdErr += c));
    etcd.on('error', (e) => die(`cannot start ${bin}: ${e.message}`));
    const cleanup = () => {
        etcd.kill('SIGKILL');
        fs.rmSync(dir, { recursive: true, force: true });
    };
    process.on('exit', cleanup);
    etcd.on('exit', (code) => { if (code !== null && code !== 0) die(`etcd exited ${code}: ${etcdErr}`); });
    await ready(client);

    // the watchers told of each revision, and when the last one was (an
    // event may come before the put's own reply is read)
    const told = new Map();
    const tally = (rev) => {
        if (!told.has(rev))
            told.set(rev, { seen: 0, at: null, done: null });
        return told.get(rev);
    };
    const onEvent = (rev) => {
        const w = tally(rev);
        if (++w.seen === n) {
            w.at = process.hrtime.bigint();
            if (w.done)
                w.done(w.at);
        }
    };
    const reqs = [];
    for (let i = 0; i < n; i += 50) // 50 at a time: the listen backlog
        reqs.push(...await Promise.all(Array.from({ length: Math.min(50, n - i) },
            () => watch(client, 'policy', onEvent))));
    const value = 'x'.repeat(2048);
    const lat = [];
    let cpu0 = null;
    for (let k = 0; k < WARMUP + pushes; k++) {
        if (k === WARMUP)
            cpu0 = process.cpuUsage();
        const t0 = process.hrtime.bigint();
        const reply = JSON.parse(await post(client, '/v3/kv/put', { key: b64('policy'), value: b64(value + k) }));
        const rev = Number(reply.header.revision);
        const w = tally(rev);
        const t1 = w.at !== null ? w.at : await new Promise((resolve) => {
            const timer = setTimeout(() => die(`put ${k}: ${w.seen} of ${n} watchers told within 30 s`), 30000);
            w.done = (t) => { clearTimeout(timer); resolve(t); };
        });
        told.delete(rev);
        if (k >= WARMUP) // the next put at once, as privmta's next push
            lat.push(Number(t1 - t0) / 1e6);
    }
    const cpu = process.cpuUsage(cpu0);
    lat.sort((a, b) => a - b);
    process.stdout.write(`ETCD ${n} p50 ${pct(lat, 50).toFixed(2)} ms p99 ${pct(lat, 99).toFixed(2)} ms ` +
        `client CPU ${((cpu.user + cpu.system) / 1000 / pushes).toFixed(2)} ms/put\n`);
    for (const r of reqs)
        r.destroy();
    process.exit(0);
}

main().catch((e) => die(e.message));
