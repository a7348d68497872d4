// The storage account behind AzureWebJobsStorage (Durable Functions task hub, timers,
// watermarks, run history, staged CSV) and the Flex Consumption deployment container.
// Shared keys are off: everything reaches it with the app's managed identity.

param name string
param location string
param tags object
param deploymentContainerName string

@description('Replication of the account; Standard_ZRS or Standard_GZRS where the region has zones.')
param sku string = 'Standard_LRS'
param identityPrincipalId string

@description('Principal (user) that also gets data access, for looking at tables and blobs while debugging; empty for none.')
param operatorPrincipalId string = ''

var storageBlobDataOwner = 'b7e6dc6d-f1e8-4753-8033-0f276bb0955b'
var storageQueueDataContributor = '974c5e8b-45b9-4653-ba55-5f855dd0fb88'
var storageTableDataContributor = '0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3'
var dataRoles = [
  storageBlobDataOwner
  storageQueueDataContributor
  storageTableDataContributor
]

resource account 'Microsoft.Storage/storageAccounts@2023-05-01' = {
  // checkov:skip=CKV_AZURE_206: locally redundant storage is enough for a task hub and staged files that a new run rebuilds; pick zone or geo redundancy with the storageSku parameter
  // checkov:skip=CKV_AZURE_59: the Flex Consumption app reaches storage over its public endpoint, identity auth only (shared keys off); private endpoints for storage are not part of this template
  // checkov:skip=CKV_AZURE_35: same reason as CKV_AZURE_59: the app's outbound addresses are not fixed, so the network default must allow
  name: name
  location: location
  tags: tags
  kind: 'StorageV2'
  sku: {
    name: sku
  }
  properties: {
    accessTier: 'Hot'
    allowSharedKeyAccess: false
    allowBlobPublicAccess: false
    allowCrossTenantReplication: false
    defaultToOAuthAuthentication: true
    minimumTlsVersion: 'TLS1_2'
    supportsHttpsTrafficOnly: true
    publicNetworkAccess: 'Enabled'
    networkAcls: {
      defaultAction: 'Allow'
      bypass: 'AzureServices'
    }
  }
}

resource blobService 'Microsoft.Storage/storageAccounts/blobServices@2023-05-01' = {
  parent: account
  name: 'default'
  properties: {
    deleteRetentionPolicy: {
      enabled: true
      days: 7
    }
    containerDeleteRetentionPolicy: {
      enabled: true
      days: 7
    }
  }
}

resource deploymentContainer 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' = {
  parent: blobService
  name: deploymentContainerName
  properties: {
    publicAccess: 'None'
  }
}

resource appDataAccess 'Microsoft.Authorization/roleAssignments@2022-04-01' = [for role in dataRoles: {
  name: guid(account.id, identityPrincipalId, role)
  scope: account
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', role)
    principalId: identityPrincipalId
    principalType: 'ServicePrincipal'
  }
}]

resource operatorDataAccess 'Microsoft.Authorization/roleAssignments@2022-04-01' = [for role in dataRoles: if (!empty(operatorPrincipalId)) {
  name: guid(account.id, operatorPrincipalId, role)
  scope: account
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', role)
    principalId: operatorPrincipalId
  }
}]

output name string = account.name
output blobEndpoint string = account.properties.primaryEndpoints.blob
output queueEndpoint string = account.properties.primaryEndpoints.queue
output tableEndpoint string = account.properties.primaryEndpoints.table
