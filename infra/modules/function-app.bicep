// Flex Consumption plan and the Python Function App. Settings the code reads arrive in
// `appSettings` (built in main.bicep from shared/config.py's settings); this module adds
// only the settings the platform itself reads (platformSettings below).

param name string
param planName string
param location string
param tags object
param identityId string
param identityClientId string
param storageBlobEndpoint string
param storageQueueEndpoint string
param storageTableEndpoint string
param deploymentContainerName string
param applicationInsightsConnectionString string

@description('Non-secret app settings the code reads, by name.')
param appSettings object

@description('Secret app settings the code reads, as [{name, value}] with Key Vault reference values.')
param secretSettings array

@description('Subnet (delegated to Microsoft.App/environments) for VNet integration; empty for none.')
param virtualNetworkSubnetId string = ''

@description('Spread the plan\'s instances over availability zones (regions with zones only).')
param zoneRedundant bool = false

@minValue(40)
@maxValue(1000)
param maximumInstanceCount int = 40
@allowed([
  2048
  4096
])
param instanceMemoryMB int = 2048

// Read by the Functions host and the Durable extension (identity-based AzureWebJobsStorage)
// and by the Application Insights agent (Entra ID auth, local auth is off).
var platformSettings = {
  AzureWebJobsStorage__credential: 'managedidentity'
  AzureWebJobsStorage__clientId: identityClientId
  AzureWebJobsStorage__blobServiceUri: storageBlobEndpoint
  AzureWebJobsStorage__queueServiceUri: storageQueueEndpoint
  AzureWebJobsStorage__tableServiceUri: storageTableEndpoint
  APPLICATIONINSIGHTS_CONNECTION_STRING: applicationInsightsConnectionString
  APPLICATIONINSIGHTS_AUTHENTICATION_STRING: 'ClientId=${identityClientId};Authorization=AAD'
  // The app exports its log records itself (shared/telemetry.py, with their fields as
  // custom dimensions): the worker then stops piping them to the host, which would store
  // each line again without its fields, and does not configure the distro a second time.
  PYTHON_ENABLE_OPENTELEMETRY: 'true'
  PYTHON_APPLICATIONINSIGHTS_ENABLE_TELEMETRY: 'false'
}

// Platform settings win: an override must not point the host at other storage.
// string(): an override written as a JSON number or boolean still becomes text.
var plainSettings = [for setting in items(union(appSettings, platformSettings)): {
  name: setting.key
  value: string(setting.value)
}]

resource plan 'Microsoft.Web/serverfarms@2024-04-01' = {
  // checkov:skip=CKV_AZURE_225: zone redundancy is offered only in some regions, so it is the zoneRedundant parameter (default off) rather than a fixed value
  name: planName
  location: location
  tags: tags
  kind: 'functionapp'
  sku: {
    name: 'FC1'
    tier: 'FlexConsumption'
  }
  properties: {
    reserved: true
    zoneRedundant: zoneRedundant
  }
}

resource site 'Microsoft.Web/sites@2024-04-01' = {
  // checkov:skip=CKV_AZURE_17: callers authenticate with function keys (and Entra ID if App Service auth is added); requiring client certificates would lock out the HTTP callers and the Durable monitoring API clients
  // checkov:skip=CKV_AZURE_222: the HTTP endpoints (health, sync status, bulk loads) and the Durable monitoring API are called from outside; each needs a function or system key
  // checkov:skip=CKV_AZURE_212: Flex Consumption scales from zero and replaces failed instances itself; always-ready instances would bill around the clock
  // checkov:skip=CKV_AZURE_213: the platform health check is not supported on Flex Consumption; GET /api/health serves external probes instead
  name: name
  location: location
  tags: union(tags, {
    'azd-service-name': 'api'
  })
  kind: 'functionapp,linux'
  identity: {
    type: 'UserAssigned'
    userAssignedIdentities: {
      '${identityId}': {}
    }
  }
  properties: {
    serverFarmId: plan.id
    httpsOnly: true
    clientCertEnabled: false
    keyVaultReferenceIdentity: identityId
    virtualNetworkSubnetId: empty(virtualNetworkSubnetId) ? null : virtualNetworkSubnetId
    siteConfig: {
      minTlsVersion: '1.2'
      scmMinTlsVersion: '1.2'
      ftpsState: 'Disabled'
      http20Enabled: true
      appSettings: concat(plainSettings, secretSettings)
    }
    functionAppConfig: {
      deployment: {
        storage: {
          type: 'blobContainer'
          value: '${storageBlobEndpoint}${deploymentContainerName}'
          authentication: {
            type: 'UserAssignedIdentity'
            userAssignedIdentityResourceId: identityId
          }
        }
      }
      scaleAndConcurrency: {
        maximumInstanceCount: maximumInstanceCount
        instanceMemoryMB: instanceMemoryMB
      }
      runtime: {
        name: 'python'
        version: '3.11'
      }
    }
  }
}

// Deployment goes through the identity-based deployment container (azd, func publish
// --flex); publishing with a user name and password is not needed.
resource ftpBasicAuth 'Microsoft.Web/sites/basicPublishingCredentialsPolicies@2024-04-01' = {
  parent: site
  name: 'ftp'
  properties: {
    allow: false
  }
}

resource scmBasicAuth 'Microsoft.Web/sites/basicPublishingCredentialsPolicies@2024-04-01' = {
  parent: site
  name: 'scm'
  properties: {
    allow: false
  }
}

output name string = site.name
output defaultHostName string = site.properties.defaultHostName
