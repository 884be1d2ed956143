const tk = require('@anush008/tokenizers');
(async()=>{
for (const v of ['uni-precompiled']) {
const t = tk.Tokenizer.fromFile('/work/wt-tok/build/test-out/tok/variants/'+v+'.json');
for (const s of ["zero\u200Bwidth", "ab\u200Bcd", "ab\u200Bcd\u200Bef"]) {
 const e = await t.encode(s, null, {addSpecialTokens:false});
 console.log(v, JSON.stringify(s), JSON.stringify(e.getTokens()), JSON.stringify(e.getIds()), JSON.stringify(e.getOffsets()));
}
console.log(JSON.stringify(t.getNormalizer().normalizeString("zero\u200Bwidth")));
}
})();
