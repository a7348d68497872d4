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

  // Step by step, as an orchestrator drives a job: create, open, upload, close, poll, results.
  const job = conn.bulk2.createJob({
    object: 'Account', operation: 'upsert', externalIdFieldName: 'External_Id__c',
    lineEnding: 'LF', columnDelimiter: 'COMMA',
  });
  await job.open();
  await job.uploadData('External_Id__c,Phone\nJ2,555-0102\nJ9,555-0109\n');
  await job.close();
  await job.poll(100, 30000);
  const results = await job.getAllResults();
  assert.deepEqual(results.successfulResults.map((r) => [r.External_Id__c, r.sf__Created]),
    [['J2', 'false']]);
  assert.deepEqual(results.failedResults.map((r) => r.External_Id__c), ['J9']);
  assert.deepEqual(results.unprocessedRecords, []);
  assert.equal((await job.check()).numberRecordsProcessed, 2);
  await job.delete();

  const found = await conn.sobject('Account').find({ Name: { $like: 'JS%' } }, ['Id', 'Name'])
    .sort({ Name: -1 }).limit(1).execute();
  assert.deepEqual(found.map((r) => r.Name), ['JS Two']);
  const retrieved = await conn.sobject('Account').retrieve(
    [created.id, upserted[0].id], { fields: ['Name'] });
  assert.deepEqual(retrieved.map((r) => r.Name), ['JS One', 'JS Two']);
  assert.equal((await conn.identity()).organization_id, conn.userInfo.organizationId);

  // Username-password login over SOAP, the identity URL, then logout ends the session.
  const soap = new jsforce.Connection({ loginUrl, version: '62.0' });
  await soap.login('integration@sfsim.example', 'sfsim-password');
  assert.equal((await soap.identity()).username, 'integration@sfsim.example');
  const soapSession = { instanceUrl: soap.instanceUrl, accessToken: soap.accessToken };
  await soap.logout();
  await assert.rejects(new jsforce.Connection({ ...soapSession, version: '62.0' }).limits(),
    (error) => error.errorCode === 'INVALID_SESSION_ID');
  await assert.rejects(new jsforce.Connection({ loginUrl, version: '62.0' })
    .login('integration@sfsim.example', 'wrong'), /INVALID_LOGIN/);

  const bulkQuery = await conn.bulk2.query('SELECT Id, Name FROM Account');
  assert.equal((await bulkQuery.toArray()).length, 2);
  assert.ok((await conn.limits()).DailyApiRequests.Max > 0);
  assert.ok((await conn.sobject('Contact').describe()).fields.some((f) => f.name === 'AccountId'));
  console.log('jsforce round trip: ok');
})().catch((error) => {
  console.error('jsforce round trip failed:', error);
  process.exit(1);
});
