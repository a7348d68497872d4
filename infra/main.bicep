// Deploys the app into one resource group: `azd up` (main.parameters.json holds azd's
// placeholders), or `az deployment group create -g <group> -f infra/main.bicep
// -p environmentName=<name>`. See infra/README.md. Every resource is declared in this
// repo's own modules (infra/modules), so checkov scans all of them.

targetScope = 'resourceGroup'

@minLength(1)
@maxLength(64)
@description('Name of the environment (azd env name); part of every resource name.')
param environmentName string

@description('Region of every resource; must offer Flex Consumption.')
param location string = resourceGroup().location

@description('Object id of a user or group that puts secrets into the vault (Key Vault Secrets Officer) and may read the app\'s tables and blobs; azd passes the signed-in user. Empty for none.')
param principalId string = ''

@description('Values for the settings in appSettingDefaults below, by name, e.g. {"SYNC_ASSET_CHANGES_ENABLED": "true"}. Secrets do not go here: put them into the vault and list them in secretsInVault.')
param appSettingOverrides object = {}

@description('Names of the secret settings (keys of secretSettings below) whose secret is in the vault; each becomes a Key Vault reference, the others stay empty (capability off).')
param secretsInVault array = []

@description('Integrate the app with a new VNet (subnets for the app and for private endpoints), to reach a private SQL Server.')
param vnetEnabled bool = false

@description('Existing subnet delegated to Microsoft.App/environments to integrate with instead of a new VNet (e.g. in the SQL Server\'s network). Empty for none.')
param existingAppSubnetId string = ''

@description('Replication of the storage account.')
@allowed([
  'Standard_LRS'
  'Standard_ZRS'
  'Standard_GRS'
  'Standard_GZRS'
])
param storageSku string = 'Standard_LRS'

@description('Upper bound of Flex Consumption instances.')
@minValue(40)
@maxValue(1000)
param maximumInstanceCount int = 40

@description('Address the operations alerts are mailed to (action group); empty: the alert rules still fire and show in the portal, but mail no one.')
param alertEmail string = ''

@description('Minutes a sync job may be behind its source (age of the rows a page reads) before the lag alert fires.')
@minValue(1)
param syncLagAlertMinutes int = 30

@description('Ticks a sync job may skip in a row (previous run still going, lock held) before the stuck-lock alert fires; the ticks must fit in 6 hours of the job\'s schedule.')
@minValue(1)
param skippedTicksAlertCount int = 3

@description('Dead-lettered records per sync job within 15 minutes above which the dead-letter alert fires (0: any).')
@minValue(0)
param deadLetterAlertCount int = 0

@description('Minutes a bulk load may run before the alert reports it as stalled (the load itself aborts jobs after BULK_LOAD_MAX_WAIT per level).')
@minValue(5)
@maxValue(1380)
param bulkLoadStallMinutes int = 120

// Every non-secret app setting the code reads (shared/config.py all_settings()), one line
// each, with the code's default ('' = unset). Kept in sync by tests/infra.
var appSettingDefaults = {
  SALESFORCE_LOGIN_URL: ''
  SALESFORCE_CLIENT_ID: ''
  SALESFORCE_USERNAME: ''
  SALESFORCE_AUTH_GRANT: 'client_credentials'
  SALESFORCE_API_VERSION: '62.0'
  SALESFORCE_AUDIENCE: ''
  SALESFORCE_MAX_RETRIES: '4'
  SALESFORCE_RETRY_BACKOFF: '0.5'
  SALESFORCE_TIMEOUT: '120.0'
  SYNC_WATERMARK_TABLE: 'SyncWatermarks'
  SYNC_RUNS_TABLE: 'SyncRuns'
  SYNC_DEAD_LETTER_TABLE: 'SyncDeadLetters'
  SYNC_PAGE_ATTEMPTS: '4'
  SYNC_PAGE_RETRY_DELAY: '5.0'
  SYNC_PAGES_PER_GENERATION: '20'
  SYNC_ACTIVITY_BUDGET: '30.0'
  SYNC_PAGES_PER_ACTIVITY: '1000'
  SYNC_CHECKPOINT_PAGES: '50'
  SYNC_CHECKPOINT_INTERVAL: '1.0'
  SYNC_PAGES_IN_FLIGHT: '4'
  SYNC_SALESFORCE_PARALLEL_CALLS: '4'
  SYNC_BACKLOG_CONTAINER: 'sync-backlogs'
  SYNC_BACKLOG_POLL_INTERVAL: '5.0'
  SYNC_BACKLOG_PART_ROWS: '50000'
  SYNC_SOURCE_LOGIN_TIMEOUT: '15'
  SYNC_SOURCE_QUERY_TIMEOUT: '120'
  SYNC_ASSET_CHANGES_ENABLED: 'false'
  SYNC_ASSET_CHANGES_SCHEDULE: '0 */2 * * * *'
  SYNC_ASSET_CHANGES_SOURCE_DIALECT: ''
  SYNC_ASSET_CHANGES_SOURCE_VIEW: 'dbo.Usr_SW_Salesforce_Assets_Changes_V'
  SYNC_ASSET_CHANGES_LAG: '30.0'
  SYNC_ASSET_CHANGES_INITIAL_WATERMARK: '1900-01-01 00:00:00.000'
  SYNC_ASSET_CHANGES_PAGE_SIZE: '500'
  SYNC_ASSET_CHANGES_MAX_RUN_TIME: '1800.0'
  SYNC_ASSET_CHANGES_MIN_INTERVAL: '30.0'
  SYNC_ASSET_CHANGES_BACKLOG_THRESHOLD: '10000'
  SYNC_ASSET_CHANGES_PARTITIONS: '1'
  SYNC_ASSET_CHANGES_SINK: 'salesforce'
  SYNC_ASSET_CHANGES_HTTP_URL: ''
  BULK_LOAD_POLL_INTERVAL: '10.0'
  BULK_LOAD_MAX_WAIT: '43200.0'
  BULK_LOAD_MAX_BODY_BYTES: '50000000'
  BULK_LOAD_UPLOAD_LIMIT_BYTES: '100000000'
  BULK_LOAD_CONTAINER: 'bulk-loads'
  BULK_LOAD_JOBS_TABLE: 'BulkLoadJobs'
  BULK_LOAD_ACTIVITY_ATTEMPTS: '3'
  BULK_LOAD_ACTIVITY_RETRY_DELAY: '5.0'
  BATCH_CONTAINER: 'batch-jobs'
  BATCH_INSTANCES_TABLE: 'BatchInstances'
  BATCH_DEAD_LETTER_TABLE: 'BatchDeadLetters'
  BATCH_MAX_BODY_BYTES: '50000000'
  BATCH_BLOCKS_PER_GENERATION: '20'
  BATCH_TURN_CHECK_INTERVAL: '30.0'
  BATCH_ACTIVITY_ATTEMPTS: '3'
  BATCH_ACTIVITY_RETRY_DELAY: '2.0'
  BATCH_INSTANCE_RETENTION: '259200.0'
  BATCH_CONTACTS_ENABLED: 'false'
  BATCH_CONTACTS_BLOCK_SIZE: ''
  BATCH_CONTACTS_MAX_FAILED_RECORDS: ''
  BATCH_CONTACTS_MAX_CONCURRENCY: ''
  BATCH_CONTACTS_SCHEDULING_STRATEGY: ''
  EVENTS_QUEUE_TABLE: 'EventQueue'
  EVENTS_DEAD_LETTER_TABLE: 'EventDeadLetters'
  EVENTS_STATE_TABLE: 'EventQueueState'
  EVENTS_BATCH_SIZE: '200'
  EVENTS_BATCHES_PER_GENERATION: '10'
  EVENTS_MAX_ATTEMPTS: '5'
  EVENTS_RETRY_DELAY: '10.0'
  EVENTS_SAFETY_SCHEDULE: '0 */1 * * * *'
  EVENTS_MAX_BODY_BYTES: '20000000'
}

// Every secret app setting the code reads, one line each: setting name -> vault secret name.
var secretSettings = {
  SALESFORCE_CLIENT_SECRET: 'salesforce-client-secret'
  SALESFORCE_PRIVATE_KEY: 'salesforce-private-key'
  SYNC_ASSET_CHANGES_SOURCE_CONNECTION: 'sync-asset-changes-source-connection'
  SYNC_ASSET_CHANGES_HTTP_AUTHORIZATION: 'sync-asset-changes-http-authorization'
}

var resourceToken = toLower(uniqueString(subscription().id, resourceGroup().id, environmentName))
var tags = {
  'azd-env-name': environmentName
}
var functionAppName = 'func-${resourceToken}'
var keyVaultName = 'kv-${resourceToken}'
// Known before the vault exists, so the references need no runtime value.
var keyVaultUri = 'https://${keyVaultName}${environment().suffixes.keyvaultDns}/'
var deploymentContainerName = 'app-package-${take(functionAppName, 32)}-${take(uniqueString(functionAppName, resourceToken), 7)}'

// One Key Vault reference per secret setting listed in secretsInVault; the others stay
// empty, which the code reads as unset (a reference to a missing secret would stop start-up).
var secretReferences = [for secret in items(secretSettings): {
  name: secret.key
  value: contains(secretsInVault, secret.key) ? '@Microsoft.KeyVault(SecretUri=${keyVaultUri}secrets/${secret.value}/)' : ''
}]

module identity 'modules/identity.bicep' = {
  name: 'identity'
  params: {
    name: 'id-${resourceToken}'
    location: location
    tags: tags
  }
}

module monitoring 'modules/monitoring.bicep' = {
  name: 'monitoring'
  params: {
    logAnalyticsName: 'log-${resourceToken}'
    applicationInsightsName: 'appi-${resourceToken}'
    location: location
    tags: tags
    identityPrincipalId: identity.outputs.principalId
  }
}

module alerts 'modules/alerts.bicep' = {
  name: 'alerts'
  params: {
    namePrefix: 'alert-${resourceToken}'
    location: location
    tags: tags
    applicationInsightsId: monitoring.outputs.applicationInsightsId
    alertEmail: alertEmail
    syncLagAlertMinutes: syncLagAlertMinutes
    skippedTicksAlertCount: skippedTicksAlertCount
    deadLetterAlertCount: deadLetterAlertCount
    bulkLoadStallMinutes: bulkLoadStallMinutes
  }
}

module workbook 'modules/workbook.bicep' = {
  name: 'workbook'
  params: {
    location: location
    tags: tags
    applicationInsightsId: monitoring.outputs.applicationInsightsId
  }
}

module storage 'modules/storage.bicep' = {
  name: 'storage'
  params: {
    name: 'st${resourceToken}'
    location: location
    tags: tags
    sku: storageSku
    deploymentContainerName: deploymentContainerName
    identityPrincipalId: identity.outputs.principalId
    operatorPrincipalId: principalId
  }
}

module keyVault 'modules/keyvault.bicep' = {
  name: 'keyVault'
  params: {
    name: keyVaultName
    location: location
    tags: tags
    identityPrincipalId: identity.outputs.principalId
    secretsOfficerPrincipalId: principalId
  }
}

module network 'modules/network.bicep' = if (vnetEnabled && empty(existingAppSubnetId)) {
  name: 'network'
  params: {
    name: 'vnet-${resourceToken}'
    location: location
    tags: tags
  }
}

module functionApp 'modules/function-app.bicep' = {
  name: 'functionApp'
  params: {
    name: functionAppName
    planName: 'plan-${resourceToken}'
    location: location
    tags: tags
    identityId: identity.outputs.id
    identityClientId: identity.outputs.clientId
    storageBlobEndpoint: storage.outputs.blobEndpoint
    storageQueueEndpoint: storage.outputs.queueEndpoint
    storageTableEndpoint: storage.outputs.tableEndpoint
    deploymentContainerName: deploymentContainerName
    applicationInsightsConnectionString: monitoring.outputs.connectionString
    appSettings: union(appSettingDefaults, appSettingOverrides)
    secretSettings: secretReferences
    virtualNetworkSubnetId: !empty(existingAppSubnetId) ? existingAppSubnetId : (vnetEnabled ? network.outputs.appSubnetId : '')
    maximumInstanceCount: maximumInstanceCount
  }
  // The app resolves Key Vault references at its first start: the vault and its role
  // assignment must exist by then.
  dependsOn: [
    keyVault
  ]
}

output AZURE_LOCATION string = location
output AZURE_TENANT_ID string = tenant().tenantId
output AZURE_FUNCTION_NAME string = functionApp.outputs.name
output AZURE_FUNCTION_URL string = 'https://${functionApp.outputs.defaultHostName}'
output AZURE_KEY_VAULT_NAME string = keyVault.outputs.name
output AZURE_STORAGE_ACCOUNT_NAME string = storage.outputs.name
output APPLICATIONINSIGHTS_NAME string = monitoring.outputs.applicationInsightsName
