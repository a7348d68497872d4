// jsforce 3, unpatched, against the simulator: node jsforce_roundtrip.js <login URL>
// Exits non-zero with the reason when an outcome differs from what Salesforce returns.
const assert = require('node:assert/strict');
const jsforce = require('jsforce');

(async () => {
  const loginUrl = process.argv[2];
  const conn = new jsforce.Connection({
    oauth2: { clientId: 'sfsim-client-id', clientSecret: 'sfsim-client-secret', loginUrl },
    version: '62.0',
  });
  await conn.authorize({ grant_type: 'client_credentials' });
  assert.equal(conn.instanceUrl, loginUrl);

  const created = await conn.sobject('Account').create({ Name: 'JS One', External_Id__c: 'J1' });
  assert.equal(created.success, true);
  const upserted = await conn.sobject('Account').upsert(
    [{ Name: 'JS Two', External_Id__c: 'J2' }, { External_Id__c: 'J3' }], 'External_Id__c');
  assert.deepEqual(upserted.map((r) => r.success), [true, false]);
  assert.equal(upserted[1].errors[0].statusCode, 'REQUIRED_FIELD_MISSING');

  const queried = await conn.query('SELECT Id, Name FROM Account ORDER BY Name');
  assert.deepEqual(queried.records.map((r) => r.Name), ['JS One', 'JS Two']);

  const loaded = await conn.bulk2.loadAndWaitForResults({
    object: 'Contact', operation: 'upsert', externalIdFieldName: 'External_Id__c',
    input: 'External_Id__c,LastName,Account.External_Id__c\nC1,Smith,J1\nC2,,J1\nC3,Lost,J404\n',
    pollTimeout: 30000, pollInterval: 100,
  });
  assert.deepEqual(loaded.successfulResults.map((r) => r.External_Id__c), ['C1']);
  assert.deepEqual(
    loaded.failedResults.map((r) => r.sf__Error.split(':')[0]).sort(),
    ['INVALID_FIELD', 'REQUIRED_FIELD_MISSING']);

  const bulkQuery = await conn.bulk2.query('SELECT Id, Name FROM Account');
  assert.equal((await bulkQuery.toArray()).length, 2);
  assert.ok((await conn.limits()).DailyApiRequests.Max > 0);
  assert.ok((await conn.sobject('Contact').describe()).fields.some((f) => f.name === 'AccountId'));
  console.log('jsforce round trip: ok');
})().catch((error) => {
  console.error('jsforce round trip failed:', error);
  process.exit(1);
});
