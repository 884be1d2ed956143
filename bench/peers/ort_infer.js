// ort_infer.js MODEL_ONNX IDS_TXT OUT_F32 THREADS BATCH [N BUDGET_S] - the ONNX
// Runtime peer of `make bench`: embeds the token-id sequences of IDS_TXT (one
// per line, space-separated ids, special tokens included) in batches of BATCH
// (padded with an attention mask), ORT_ENABLE_ALL graph optimizations, THREADS
// intra-op threads, sequential execution. One warm-up batch of 2 sequences,
// then batches until N sequences are done or BUDGET_S seconds have passed (at
// least one batch). Prints JSON {seconds, cpu_seconds, sequences, seq_per_s,
// peak_rss_kb}; writes the embeddings (raw float32 [n, dim]) to OUT_F32 for
// the accuracy cross-check.
'use strict';
const fs = require('fs');
const path = require('path');
const ort = require(path.join(process.env.ORT_NODE_MODULES || path.join(__dirname, 'node_modules'),
                              'onnxruntime-node'));

async function main() {
    const [modelPath, idsPath, outPath, threads, batch, nWant, budgetS] = process.argv.slice(2);
    const nth = parseInt(threads, 10), bs = parseInt(batch, 10);
    const budget = budgetS ? parseFloat(budgetS) : Infinity;
    const seqs = fs.readFileSync(idsPath, 'utf8').split('\n').filter((l) => l.trim())
        .slice(0, nWant ? parseInt(nWant, 10) : undefined).map((l) => l.trim().split(/\s+/).map(Number));
    const sess = await ort.InferenceSession.create(modelPath, {
        intraOpNumThreads: nth, interOpNumThreads: 1, executionMode: 'sequential',
        graphOptimizationLevel: 'all',
    });
    const feeds = (b0, n) => {
        const rows = seqs.slice(b0, b0 + n);
        const T = Math.max(...rows.map((r) => r.length));
        const ids = new BigInt64Array(rows.length * T), mask = new BigInt64Array(rows.length * T);
        rows.forEach((r, i) => r.forEach((t, j) => { ids[i * T + j] = BigInt(t); mask[i * T + j] = 1n; }));
        return {
            input_ids: new ort.Tensor('int64', ids, [rows.length, T]),
            attention_mask: new ort.Tensor('int64', mask, [rows.length, T]),
        };
    };
    await sess.run(feeds(0, 2)); // warm-up
    const out = [];
    let done = 0;
    const c0 = process.cpuUsage();
    const t0 = process.hrtime.bigint();
    while (done < seqs.length) {
        const r = await sess.run(feeds(done, bs));
        out.push(r.embeddings.data);
        done += Math.min(bs, seqs.length - done);
        if (Number(process.hrtime.bigint() - t0) / 1e9 > budget) break;
    }
    const dt = Number(process.hrtime.bigint() - t0) / 1e9;
    const cu = process.cpuUsage(c0);
    fs.writeFileSync(outPath, Buffer.concat(out.map((a) => Buffer.from(a.buffer, a.byteOffset, a.byteLength))));
    console.log(JSON.stringify({ impl: 'onnxruntime-node', seconds: dt, cpu_seconds: (cu.user + cu.system) / 1e6,
                                 sequences: done, seq_per_s: done / dt, threads: nth,
                                 peak_rss_kb: process.resourceUsage().maxRSS }));
}
main().catch((e) => { console.error(e.message || e); process.exit(1); });
