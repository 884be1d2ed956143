// ort_infer.js MODEL_ONNX IDS_JSON OUT_JSON THREADS BATCH - the ONNX Runtime
// peer of `make bench`: embeds the token-id sequences of IDS_JSON (a JSON
// list of lists, special tokens included) in batches of BATCH (padded with
// an attention mask), ORT_ENABLE_ALL graph optimizations, THREADS intra-op
// threads, sequential execution. One warm-up batch, then every batch timed.
// Prints JSON {seconds, cpu_seconds, sequences, peak_rss_kb}; writes the embeddings to
// OUT_JSON (a flat list) for the accuracy cross-check.
'use strict';
const fs = require('fs');
const path = require('path');
const ort = require(path.join(process.env.ORT_NODE_MODULES || path.join(__dirname, 'node_modules'),
                              'onnxruntime-node'));

async function main() {
    const [modelPath, idsPath, outPath, threads, batch] = process.argv.slice(2);
    const nth = parseInt(threads, 10), bs = parseInt(batch, 10);
    const seqs = JSON.parse(fs.readFileSync(idsPath, 'utf8'));
    const sess = await ort.InferenceSession.create(modelPath, {
        intraOpNumThreads: nth, interOpNumThreads: 1, executionMode: 'sequential',
        graphOptimizationLevel: 'all',
    });
    const feeds = (b0) => {
        const rows = seqs.slice(b0, b0 + bs);
        const T = Math.max(...rows.map((r) => r.length));
        const ids = new BigInt64Array(rows.length * T), mask = new BigInt64Array(rows.length * T);
        rows.forEach((r, i) => r.forEach((t, j) => { ids[i * T + j] = BigInt(t); mask[i * T + j] = 1n; }));
        return {
            input_ids: new ort.Tensor('int64', ids, [rows.length, T]),
            attention_mask: new ort.Tensor('int64', mask, [rows.length, T]),
        };
    };
    await sess.run(feeds(0)); // warm-up
    const out = [];
    const c0 = process.cpuUsage();
    const t0 = process.hrtime.bigint();
    for (let b0 = 0; b0 < seqs.length; b0 += bs) {
        const r = await sess.run(feeds(b0));
        out.push(...r.embeddings.data);
    }
    const dt = Number(process.hrtime.bigint() - t0) / 1e9;
    const cu = process.cpuUsage(c0);
    fs.writeFileSync(outPath, JSON.stringify(out));
    console.log(JSON.stringify({ seconds: dt, cpu_seconds: (cu.user + cu.system) / 1e6, sequences: seqs.length,
                                 peak_rss_kb: process.resourceUsage().maxRSS }));
}
main().catch((e) => { console.error(e.message || e); process.exit(1); });
