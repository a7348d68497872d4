// An Azure Workbook with the operations console's charts, from Application Insights: rows
// and watermark lag per sync run, run outcomes, skipped ticks, dead letters, bulk loads and
// batch instances. The queries read the same log event fields as the alerts
// (modules/alerts.bicep).

param location string
param tags object
param applicationInsightsId string

var displayName = 'SQL to Salesforce operations'

var rowsPerRunQuery = '''
traces
| where tostring(customDimensions.event) == "sync run ended"
| extend job = tostring(customDimensions.job), rows = tolong(customDimensions.rows)
| where isnotnull(rows)
| summarize rows = sum(rows) by bin(timestamp, 15m), job
'''

var lagPerPageQuery = '''
traces
| where tostring(customDimensions.event) == "sync checkpoint"
    and tostring(customDimensions.cursor_kind) == "timestamp"
| extend job = tostring(customDimensions.job),
         cursorTime = todatetime(tostring(customDimensions.cursor))
| where isnotnull(cursorTime)
| summarize lagMinutes = max(datetime_diff('minute', timestamp, cursorTime)) by bin(timestamp, 5m), job
'''

var runOutcomesQuery = '''
traces
| extend event = tostring(customDimensions.event)
| where event == "sync run ended"
    or (event == "sync tick" and tostring(customDimensions.action) == "terminated")
| extend outcome = iff(event == "sync tick", "terminated (max run time)",
                       tostring(customDimensions.outcome))
| summarize runs = count() by bin(timestamp, 1h), outcome
'''

var skippedTicksQuery = '''
traces
| where tostring(customDimensions.event) == "sync tick"
| extend action = tostring(customDimensions.action)
| where action startswith "skipped"
| extend why = case(action == "skipped_busy", "previous run still running",
                    action == "skipped_held", "inside the minimum interval or lease held",
                    action == "skipped_disabled", "job disabled", "other")
| summarize skipped = count() by bin(timestamp, 1h), why
'''

var deadLettersQuery = '''
traces
| where tostring(customDimensions.event) == "sync checkpoint"
| extend job = tostring(customDimensions.job),
         deadLettered = tolong(customDimensions.dead_lettered)
| summarize deadLettered = sum(deadLettered) by bin(timestamp, 1h), job
'''

var bulkLoadsQuery = '''
traces
| extend event = tostring(customDimensions.event)
| where event == "bulk load started" or event == "bulk load ended"
| extend loadId = tostring(customDimensions.load_id)
| summarize started = minif(timestamp, event == "bulk load started"),
            ended = maxif(timestamp, event == "bulk load ended"),
            records = take_anyif(tolong(customDimensions.records), event == "bulk load started"),
            outcome = take_anyif(tostring(customDimensions.outcome), event == "bulk load ended"),
            loaded = take_anyif(tolong(customDimensions.loaded_records), event == "bulk load ended"),
            failed = take_anyif(tolong(customDimensions.failed_records), event == "bulk load ended")
    by loadId
| extend outcome = iff(isnull(ended), "running", outcome),
         minutes = round((coalesce(ended, now()) - started) / 1m, 1)
| project loadId, outcome, records, loaded, failed, started, ended, minutes
| order by started desc
'''

var batchInstancesQuery = '''
traces
| where tostring(customDimensions.event) == "batch instance ended"
| extend job = tostring(customDimensions.batch_job), status = tostring(customDimensions.status)
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
        json: '## ${displayName}\nThe charts of the app\'s console (GET /api/console), from the app\'s logs. The alerts of infra/modules/alerts.bicep read the same log fields.'
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
