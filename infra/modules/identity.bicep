// The one identity the app uses for storage, Key Vault references, Application Insights
// and deployment: a user-assigned identity outlives the app, so its role assignments are
// in place before the app's first start.

param name string
param location string
param tags object

resource identity 'Microsoft.ManagedIdentity/userAssignedIdentities@2023-01-31' = {
  name: name
  location: location
  tags: tags
}

output id string = identity.id
output name string = identity.name
output clientId string = identity.properties.clientId
output principalId string = identity.properties.principalId
