// An Azure Workbook with the operations console's charts, from Application Insights: rows
// and watermark lag per sync run, run outcomes, skipped ticks, dead letters, bulk loads and
// batch instances. The queries parse the same log lines as the alerts (modules/alerts.bicep).

param location string
param tags object
param applicationInsightsId string

var displayName = 'SQL to Salesforce operations'

var rowsPerRunQuery = '''
traces
| where message startswith "sync job " and message has " succeeded: "
| parse message with "sync job " job ": run " runId " succeeded: {'pages': " pages:long ", 'rows': " rows:long ", 'delivered': " delivered:long ", 'dead_lettered': " deadLettered:long "}" *
| where isnotnull(rows)
| summarize rows = sum(rows) by bin(timestamp, 15m), job
'''

var lagPerPageQuery = '''
traces
| where message startswith "sync job " and message contains "dead-lettered, now at {'cursor': '"
| parse message with "sync job " job ": run " * " now at {'cursor': '" cursor "'" *
| extend cursorTime = todatetime(cursor)
| where isnotnull(cursorTime)
| summarize lagMinutes = max(datetime_diff('minute', timestamp, cursorTime)) by bin(timestamp, 5m), job
'''

var runOutcomesQuery = '''
traces
| where message startswith "sync job " and message has ": run "
| parse message with "sync job " job ": run " runId " " outcome ":" *
| where outcome in ("succeeded", "failed")
    or message has "exceeded the max run time"
| extend outcome = iff(message has "exceeded the max run time", "terminated (max run time)", outcome)
| summarize runs = count() by bin(timestamp, 1h), outcome
'''

var skippedTicksQuery = '''
traces
| where message startswith "sync job " and message has "tick skipped"
| parse message with "sync job " job ": " reason
| extend why = case(reason has "still running", "previous run still running",
                    reason has "next start allowed", "inside the minimum interval or lease held",
                    "other")
| summarize skipped = count() by bin(timestamp, 1h), why
'''

var deadLettersQuery = '''
traces
| where message startswith "sync job " and message has " dead-lettered, now at "
| parse message with "sync job " job ": run " runId " page of " rows:long " rows, " delivered:long " delivered, " deadLettered:long " dead-lettered, now at " *
| summarize deadLettered = sum(deadLettered) by bin(timestamp, 1h), job
'''

var bulkLoadsQuery = '''
traces
| where customDimensions.Category == "Host.Triggers.DurableTask"
| where tostring(customDimensions.prop__functionName) == "bulk_load"
| where tobool(customDimensions.prop__isReplay) != true
| extend loadId = tostring(customDimensions.prop__instanceId),
         state = tostring(customDimensions.prop__state)
| summarize started = minif(timestamp, state == "Started"),
            ended = maxif(timestamp, state in ("Completed", "Failed", "Terminated")),
            arg_max(timestamp, state) by loadId
| extend minutes = round((coalesce(ended, now()) - started) / 1m, 1)
| project loadId, state, started, ended, minutes
| order by started desc
'''

var batchInstancesQuery = '''
traces
| where message startswith "batch " and message has " ended "
| parse message with "batch " job " " instanceId " ended " status ":" *
| where status matches regex "^[A-Z_]+$"
| summarize instances = count() by job, status
'''

var sections = [
  {
    name: 'rows-per-run'
    title: 'Sync: rows per run (sum per 15 minutes)'
    query: rowsPerRunQuery
    visualization: 'barchart'
    durationMs: 86400000
  }
  {
    name: 'lag-per-page'
    title: 'Sync: watermark lag when each page was written (minutes)'
    query: lagPerPageQuery
    visualization: 'timechart'
    durationMs: 86400000
  }
  {
    name: 'run-outcomes'
    title: 'Sync: runs by outcome per hour'
    query: runOutcomesQuery
    visualization: 'barchart'
    durationMs: 604800000
  }
  {
    name: 'skipped-ticks'
    title: 'Sync: skipped ticks per hour'
    query: skippedTicksQuery
    visualization: 'barchart'
    durationMs: 86400000
  }
  {
    name: 'dead-letters'
    title: 'Sync: dead-lettered records per hour'
    query: deadLettersQuery
    visualization: 'barchart'
    durationMs: 604800000
  }
  {
    name: 'bulk-loads'
    title: 'Bulk loads (last 7 days)'
    query: bulkLoadsQuery
    visualization: 'table'
    durationMs: 604800000
  }
  {
    name: 'batch-instances'
    title: 'Batch instances by final status'
    query: batchInstancesQuery
    visualization: 'table'
    durationMs: 604800000
  }
]

var queryItems = [for section in sections: {
  type: 3
  name: section.name
  content: {
    version: 'KqlItem/1.0'
    title: section.title
    query: section.query
    size: 0
    queryType: 0
    resourceType: 'microsoft.insights/components'
    visualization: section.visualization
    timeContext: {
      durationMs: section.durationMs
    }
  }
}]

var content = {
  version: 'Notebook/1.0'
  items: concat([
    {
      type: 1
      name: 'intro'
      content: {
        json: '## ${displayName}\nThe charts of the app\'s console (GET /api/console), from the app\'s logs. The alerts of infra/modules/alerts.bicep parse the same lines.'
      }
    }
  ], queryItems)
  fallbackResourceIds: [
    applicationInsightsId
  ]
  '$schema': 'https://github.com/Microsoft/Application-Insights-Workbooks/blob/master/schema/workbook.json'
}

resource workbook 'Microsoft.Insights/workbooks@2023-06-01' = {
  name: guid(resourceGroup().id, applicationInsightsId, 'operations-workbook')
  location: location
  tags: union(tags, {
    'hidden-title': displayName
  })
  kind: 'shared'
  properties: {
    displayName: displayName
    category: 'workbook'
    sourceId: applicationInsightsId
    serializedData: string(content)
  }
}

output workbookId string = workbook.id
