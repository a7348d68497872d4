// Alerts on what the app logs to Application Insights: an action group that mails the
// operator, and one scheduled query rule per condition an operator must act on. The
// queries read the fields of the app's log events (shared/log_fields.py) and the Durable
// extension's tracking traces; infra/README.md lists them with the reason.

param namePrefix string
param location string
param tags object
param applicationInsightsId string

@description('Address the alerts are mailed to; empty: the rules fire (visible in the portal) but mail no one.')
param alertEmail string

@description('Minutes the rows a sync page reads may be behind their change time before the lag alert fires.')
param syncLagAlertMinutes int

@description('Ticks skipped in a row (lock held, run still going) before the stuck-lock alert fires.')
param skippedTicksAlertCount int

@description('Dead-lettered records per job within 15 minutes above which the dead-letter alert fires.')
param deadLetterAlertCount int

@description('Minutes a bulk load may run before it is reported as stalled.')
param bulkLoadStallMinutes int

// -- the queries: the fields of the app's log events ----------------------------------------
// shared/log_fields.log_event attaches each event's ids and counts to its log record; they
// arrive as customDimensions.<field> (strings: numbers are read with tolong/todatetime).

// shared/sync/run.py end_run and shared/sync/starter.py: "sync run ended" with an outcome
// other than succeeded (failed, terminated, or ended outside its orchestration), and a
// "sync tick" that terminated a run past its max run time.
var failedSyncRunQuery = '''
traces
| extend event = tostring(customDimensions.event)
| where (event == "sync run ended" and tostring(customDimensions.outcome) != "succeeded")
    or (event == "sync tick" and tostring(customDimensions.action) == "terminated")
| project timestamp, job = tostring(customDimensions.job),
          runId = tostring(customDimensions.run_id), message
'''

// shared/sync/pages.py, at each checkpoint: "sync checkpoint" with the rows, delivered and
// dead_lettered the checkpoint covers.
var deadLetterQuery = '''
traces
| where tostring(customDimensions.event) == "sync checkpoint"
| extend job = tostring(customDimensions.job),
         deadLettered = tolong(customDimensions.dead_lettered)
| summarize deadLettered = sum(deadLettered) by job
'''

// The same checkpoint carries the cursor the page reached; for timestamp cursors its age
// when the page was written is how far the sync is behind the source (whose clock is taken
// as UTC, as GET /api/sync/{job} does).
var syncLagQuery = '''
traces
| where tostring(customDimensions.event) == "sync checkpoint"
    and tostring(customDimensions.cursor_kind) == "timestamp"
| extend job = tostring(customDimensions.job),
         cursorTime = todatetime(tostring(customDimensions.cursor))
| where isnotnull(cursorTime)
| summarize lagMinutes = max(datetime_diff('minute', timestamp, cursorTime)) by job
'''

// shared/sync/starter.py run_tick: a "sync tick" per tick, its action "started" for a start
// and "skipped_busy" / "skipped_held" when the lock kept it out. Skips since the last start.
var skippedTicksQuery = '''
traces
| where tostring(customDimensions.event) == "sync tick"
| extend job = tostring(customDimensions.job), action = tostring(customDimensions.action)
| where action in ("started", "skipped_busy", "skipped_held")
| extend started = action == "started"
| summarize lastStart = maxif(timestamp, started), skips = make_list_if(timestamp, not(started)) by job
| mv-expand skippedAt = skips to typeof(datetime)
| summarize skippedSinceLastStart = countif(isnull(lastStart) or skippedAt > lastStart) by job
'''

// shared/bulkload/load_events.py: "bulk load started" (the starter, once the orchestration
// is started) and "bulk load ended" (its last activity, with the load's outcome). A load
// that ended "failed" in the last 15 minutes, or one started longer ago than the stall
// limit that has not ended: stuck, or its orchestration failed or was terminated, which
// ends it without its "bulk load ended".
var bulkLoadQuery = replace('''
traces
| extend event = tostring(customDimensions.event)
| where event == "bulk load started" or event == "bulk load ended"
| extend loadId = tostring(customDimensions.load_id),
         outcome = tostring(customDimensions.outcome)
| summarize started = minif(timestamp, event == "bulk load started"),
            ended = maxif(timestamp, event == "bulk load ended"),
            failedAt = maxif(timestamp, event == "bulk load ended" and outcome == "failed")
    by loadId
| extend problem = case(failedAt > ago(15m), "failed",
                        isnull(ended) and started < ago(__STALL_MINUTES__m), "stalled", "")
| where problem != ""
''', '__STALL_MINUTES__', string(bulkLoadStallMinutes))

// activities/batch.py batch_finish: "batch instance ended" with the instance's final status;
// shared/batch/liveness.py: "batch instance settled" FAILED when its orchestration failed or
// vanished (an operator's terminate settles it STOPPED: no alert).
var batchFailedQuery = '''
traces
| where (tostring(customDimensions.event) == "batch instance ended"
         and tostring(customDimensions.status) == "FAILED_PROCESS_RECORDS")
     or (tostring(customDimensions.event) == "batch instance settled"
         and tostring(customDimensions.status) == "FAILED")
| project timestamp, job = tostring(customDimensions.batch_job),
          instanceId = tostring(customDimensions.instance_id),
          status = tostring(customDimensions.status),
          reason = tostring(customDimensions.reason),
          failedRecords = tolong(customDimensions.failed_records), message
'''

// orchestrators/http.py failure_response: "http request failed" when an HTTP function
// raised (logged at ERROR with the traceback): 503 when a dependency was down or throttling
// (its code names it: STORAGE_UNAVAILABLE, DURABLE_UNAVAILABLE, ...), else 500
// INTERNAL_ERROR. The operation is the HTTP function's name.
var httpFailedQuery = '''
traces
| where tostring(customDimensions.event) == "http request failed"
| project timestamp, operation = tostring(customDimensions.operation),
          code = tostring(customDimensions.code),
          status = tolong(customDimensions.status),
          errorType = tostring(customDimensions.error_type), message
'''

// -- the action group and the rules ----------------------------------------------------------

resource actionGroup 'Microsoft.Insights/actionGroups@2023-01-01' = {
  name: '${namePrefix}-operators'
  location: 'global'
  tags: tags
  properties: {
    groupShortName: 'sync-ops'
    enabled: true
    emailReceivers: empty(alertEmail) ? [] : [
      {
        name: 'operator'
        emailAddress: alertEmail
        useCommonAlertSchema: true
      }
    ]
  }
}

var everyJob = [
  {
    name: 'job'
    operator: 'Include'
    values: [
      '*'
    ]
  }
]

resource syncRunFailed 'Microsoft.Insights/scheduledQueryRules@2023-12-01' = {
  name: '${namePrefix}-sync-run-failed'
  location: location
  tags: tags
  kind: 'LogAlert'
  properties: {
    displayName: 'Sync run failed'
    description: 'A sync run failed or was terminated (watermark not advanced past the failure). GET /api/sync/{job} shows the error of the run.'
    severity: 1
    enabled: true
    scopes: [
      applicationInsightsId
    ]
    evaluationFrequency: 'PT5M'
    windowSize: 'PT5M'
    criteria: {
      allOf: [
        {
          query: failedSyncRunQuery
          timeAggregation: 'Count'
          dimensions: everyJob
          operator: 'GreaterThan'
          threshold: 0
          failingPeriods: {
            numberOfEvaluationPeriods: 1
            minFailingPeriodsToAlert: 1
          }
        }
      ]
    }
    autoMitigate: false
    actions: {
      actionGroups: [
        actionGroup.id
      ]
    }
  }
}

resource deadLettersGrowing 'Microsoft.Insights/scheduledQueryRules@2023-12-01' = {
  name: '${namePrefix}-sync-dead-letters'
  location: location
  tags: tags
  kind: 'LogAlert'
  properties: {
    displayName: 'Sync dead letters growing'
    description: 'Salesforce or the mapping rejected records of a sync job: they are in the dead-letter table (SYNC_DEAD_LETTER_TABLE) with the error.'
    severity: 2
    enabled: true
    scopes: [
      applicationInsightsId
    ]
    evaluationFrequency: 'PT15M'
    windowSize: 'PT15M'
    criteria: {
      allOf: [
        {
          query: deadLetterQuery
          timeAggregation: 'Total'
          metricMeasureColumn: 'deadLettered'
          dimensions: everyJob
          operator: 'GreaterThan'
          threshold: deadLetterAlertCount
          failingPeriods: {
            numberOfEvaluationPeriods: 1
            minFailingPeriodsToAlert: 1
          }
        }
      ]
    }
    autoMitigate: false
    actions: {
      actionGroups: [
        actionGroup.id
      ]
    }
  }
}

resource syncLagHigh 'Microsoft.Insights/scheduledQueryRules@2023-12-01' = {
  name: '${namePrefix}-sync-lag'
  location: location
  tags: tags
  kind: 'LogAlert'
  properties: {
    displayName: 'Sync lag above threshold'
    description: 'The rows a sync job reads are older than the threshold: it is behind its source (a backlog, slow pages, or a first load).'
    severity: 2
    enabled: true
    scopes: [
      applicationInsightsId
    ]
    evaluationFrequency: 'PT15M'
    windowSize: 'PT15M'
    criteria: {
      allOf: [
        {
          query: syncLagQuery
          timeAggregation: 'Maximum'
          metricMeasureColumn: 'lagMinutes'
          dimensions: everyJob
          operator: 'GreaterThan'
          threshold: syncLagAlertMinutes
          failingPeriods: {
            numberOfEvaluationPeriods: 1
            minFailingPeriodsToAlert: 1
          }
        }
      ]
    }
    autoMitigate: true
    actions: {
      actionGroups: [
        actionGroup.id
      ]
    }
  }
}

resource lockStuck 'Microsoft.Insights/scheduledQueryRules@2023-12-01' = {
  name: '${namePrefix}-sync-lock-stuck'
  location: location
  tags: tags
  kind: 'LogAlert'
  properties: {
    displayName: 'Sync ticks skipped (lock stuck)'
    description: 'A sync job skipped this many ticks in a row within 6 hours: its run takes longer than the schedule, or its lock is held.'
    severity: 2
    enabled: true
    scopes: [
      applicationInsightsId
    ]
    evaluationFrequency: 'PT15M'
    windowSize: 'PT6H'
    criteria: {
      allOf: [
        {
          query: skippedTicksQuery
          timeAggregation: 'Maximum'
          metricMeasureColumn: 'skippedSinceLastStart'
          dimensions: everyJob
          operator: 'GreaterThanOrEqual'
          threshold: skippedTicksAlertCount
          failingPeriods: {
            numberOfEvaluationPeriods: 1
            minFailingPeriodsToAlert: 1
          }
        }
      ]
    }
    autoMitigate: true
    actions: {
      actionGroups: [
        actionGroup.id
      ]
    }
  }
}

resource bulkLoadFailedOrStalled 'Microsoft.Insights/scheduledQueryRules@2023-12-01' = {
  name: '${namePrefix}-bulk-load'
  location: location
  tags: tags
  kind: 'LogAlert'
  properties: {
    displayName: 'Bulk load failed or stalled'
    description: 'A bulk load ended with outcome failed (a level failed), or has not ended within the stall limit (stuck, or its orchestration failed or was terminated). GET /api/bulk-loads/{loadId} shows its summary.'
    severity: 1
    enabled: true
    scopes: [
      applicationInsightsId
    ]
    evaluationFrequency: 'PT15M'
    windowSize: 'P1D'
    criteria: {
      allOf: [
        {
          query: bulkLoadQuery
          timeAggregation: 'Count'
          dimensions: [
            {
              name: 'loadId'
              operator: 'Include'
              values: [
                '*'
              ]
            }
            {
              name: 'problem'
              operator: 'Include'
              values: [
                '*'
              ]
            }
          ]
          operator: 'GreaterThan'
          threshold: 0
          failingPeriods: {
            numberOfEvaluationPeriods: 1
            minFailingPeriodsToAlert: 1
          }
        }
      ]
    }
    autoMitigate: false
    actions: {
      actionGroups: [
        actionGroup.id
      ]
    }
  }
}

resource batchFailedRecords 'Microsoft.Insights/scheduledQueryRules@2023-12-01' = {
  name: '${namePrefix}-batch-failed-records'
  location: location
  tags: tags
  kind: 'LogAlert'
  properties: {
    displayName: 'Batch instance failed'
    description: 'A batch job instance reached its max failed records (FAILED_PROCESS_RECORDS: no new blocks were started; GET .../failures lists the failed records), or its orchestration failed and its row was settled FAILED.'
    severity: 2
    enabled: true
    scopes: [
      applicationInsightsId
    ]
    evaluationFrequency: 'PT15M'
    windowSize: 'PT15M'
    criteria: {
      allOf: [
        {
          query: batchFailedQuery
          timeAggregation: 'Count'
          dimensions: everyJob
          operator: 'GreaterThan'
          threshold: 0
          failingPeriods: {
            numberOfEvaluationPeriods: 1
            minFailingPeriodsToAlert: 1
          }
        }
      ]
    }
    autoMitigate: false
    actions: {
      actionGroups: [
        actionGroup.id
      ]
    }
  }
}

resource httpRequestFailed 'Microsoft.Insights/scheduledQueryRules@2023-12-01' = {
  name: '${namePrefix}-http-request-failed'
  location: location
  tags: tags
  kind: 'LogAlert'
  properties: {
    displayName: 'HTTP request failed'
    description: 'An HTTP endpoint answered 500 INTERNAL_ERROR (a defect or a misconfiguration) or 503 (a dependency down or throttling: the code names it). The trace of the operation holds the exception and its traceback.'
    severity: 2
    enabled: true
    scopes: [
      applicationInsightsId
    ]
    evaluationFrequency: 'PT15M'
    windowSize: 'PT15M'
    criteria: {
      allOf: [
        {
          query: httpFailedQuery
          timeAggregation: 'Count'
          dimensions: [
            {
              name: 'operation'
              operator: 'Include'
              values: [
                '*'
              ]
            }
            {
              name: 'code'
              operator: 'Include'
              values: [
                '*'
              ]
            }
          ]
          operator: 'GreaterThan'
          threshold: 0
          failingPeriods: {
            numberOfEvaluationPeriods: 1
            minFailingPeriodsToAlert: 1
          }
        }
      ]
    }
    autoMitigate: false
    actions: {
      actionGroups: [
        actionGroup.id
      ]
    }
  }
}

output actionGroupId string = actionGroup.id
