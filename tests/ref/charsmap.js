// charsmap.js - builds a SentencePiece `precompiled_charsmap` (the blob HF's Precompiled
// normalizer reads): u32 trie size, a darts-clone double array over the UTF-8 bytes of each
// rule's source, then the NUL-terminated replacements.
//
//   node charsmap.js '[["A","a"],["\u200b",""]]'   prints the base64 blob
'use strict';
function buildCharsmap(rules) {
  // rules: [[from, to]]; pool of "to\0" strings, trie over the bytes of `from`
  let pool = Buffer.alloc(0);
  const root = {kids: new Map(), value: -1};
  for (const [from, to] of rules) {
    const off = pool.length;
    pool = Buffer.concat([pool, Buffer.from(to, 'utf8'), Buffer.from([0])]);
    let n = root;
    for (const b of Buffer.from(from, 'utf8')) {
      if (!n.kids.has(b)) n.kids.set(b, {kids: new Map(), value: -1});
      n = n.kids.get(b);
    }
    n.value = off;
  }
  const units = [0];
  const used = new Set([0]);
  const setU = (i, v) => { while (units.length <= i) units.push(0); units[i] = v >>> 0; used.add(i); };
  // breadth-first placement; each node's children at base ^ label, first fit
  const queue = [[root, 0]];
  let nextTry = 1;
  while (queue.length) {
    const [node, pos] = queue.shift();
    const labels = [...node.kids.keys()];
    if (node.value >= 0) labels.push(0);
    if (!labels.length) continue;
    let base = nextTry;
    for (;; base++) if (labels.every((l) => (base ^ l) !== 0 && !used.has(base ^ l))) break;
    while (used.has(nextTry)) nextTry++;
    const offset = pos ^ base;
    if (offset >= (1 << 21)) throw new Error('charsmap too large');
    const lab = pos === 0 ? 0 : units[pos] & 0xFF;
    setU(pos, (offset << 10) | (node.value >= 0 ? 1 << 8 : 0) | lab);
    if (node.value >= 0) setU(base ^ 0, (0x80000000 | node.value) >>> 0);
    for (const [b, kid] of node.kids) {
      setU(base ^ b, b);
      queue.push([kid, base ^ b]);
    }
  }
  const trie = Buffer.alloc(units.length * 4);
  units.forEach((u, i) => trie.writeUInt32LE(u >>> 0, 4 * i));
  const head = Buffer.alloc(4);
  head.writeUInt32LE(trie.length, 0);
  return Buffer.concat([head, trie, pool]).toString('base64');
}

module.exports = {buildCharsmap};
if (require.main === module) console.log(buildCharsmap(JSON.parse(process.argv[2])));
