// fhir-kit-client (npm, unchanged) against a running hub: node fhir_kit_client.mjs MODULE_DIR BASE_URL TOKEN
// Prints one JSON object of what the client saw; tests/test_fhir_kit_client.py asserts on it.
import { pathToFileURL } from 'node:url';
import path from 'node:path';

const [moduleDir, baseUrl, token] = process.argv.slice(2);
const { Client, RESPONSE_KEY } = await import(pathToFileURL(path.join(moduleDir, 'dist', 'index.js')).href);
const client = new Client({ baseUrl, bearerToken: token, customHeaders: { origin: 'https://app.clinic.example' } });
const headersOf = (result) => Object.fromEntries(result[RESPONSE_KEY].headers.entries());
const statusOf = (result) => result[RESPONSE_KEY].status;
const identifier = 'http://fhir.hl7.org.vn/core/sid/cccd|079170000555';
const patient = {
  resourceType: 'Patient', name: [{ family: 'Võ', given: ['Thị', 'Sáu'] }], birthDate: '1970-02-03',
  identifier: [{ system: 'http://fhir.hl7.org.vn/core/sid/cccd', value: '079170000555' }],
};

const out = {};
const created = await client.create({ resourceType: 'Patient', body: patient,
                                      options: { headers: { 'if-none-exist': `identifier=${identifier}` } } });
const again = await client.request(`Patient?identifier=${encodeURIComponent(identifier)}`, {
  method: 'POST', body: patient, options: { headers: { 'content-type': 'application/fhir+json' } } });
out.conditional = { first: statusOf(created), second: statusOf(again), same: created.id === again.id };

await client.update({ resourceType: 'Patient', id: created.id, body: { ...created, active: true } });
const history = await client.history({ resourceType: 'Patient', id: created.id });
out.historyTotal = history.total;
out.historyEntries = history.entry.length;

const subset = await client.request(`Patient/${created.id}?_elements=birthDate`);
out.subsetKeys = Object.keys(subset).sort();
out.subsetTags = (subset.meta.tag || []).map((t) => t.code);

const read = await client.read({ resourceType: 'Patient', id: created.id });
const head = await client.request(`Patient/${created.id}`, { method: 'HEAD' });
out.head = { status: statusOf(head), etag: headersOf(head).etag, readEtag: headersOf(read).etag,
             length: headersOf(head)['content-length'], readLength: headersOf(read)['content-length'] };

for (let i = 0; i < 12; i += 1) {
  await client.create({ resourceType: 'Organization', body: { resourceType: 'Organization', name: `Trạm y tế ${i}`,
                                                              alias: ['x'.repeat(40)] } });
}
const bundle = await client.search({ resourceType: 'Organization', searchParams: { _count: 12 } });
out.search = { entries: bundle.entry.length, encoding: headersOf(bundle)['content-encoding'] || null,
               cors: headersOf(bundle)['access-control-allow-origin'] || null };
console.log(JSON.stringify(out));
